"""The console on a real terminal (a pseudo-terminal): line editing and history, and `run` output."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import subprocess
import sys
import time

from tests.bot.test_cli import ROOT, cli
from tests.support.wait import wait_for

UP = "\x1b[A"


class Terminal:
    """The console in a pseudo-terminal, read as a person would see it."""

    def __init__(self, data_dir) -> None:
        env = {**os.environ, "MILVUS_CHATOPS_DATA_DIR": str(data_dir), "TERM": "xterm", "NO_COLOR": "1",
               "PROMPT_TOOLKIT_NO_CPR": "1"}  # a real terminal answers cursor-position queries; this one does not
        env.pop("MILVUS_CHATOPS_CONFIG", None)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the console
            os.chdir(ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "bot", "console"], env)  # noqa: S606
        self.screen = ""

    def read(self) -> str:
        while select.select([self.fd], [], [], 0.05)[0]:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.screen += chunk.decode(errors="replace")
        return self.screen

    def type(self, keys: str) -> None:
        for key in keys:  # one key at a time, as typed
            os.write(self.fd, key.encode())
            time.sleep(0.01)

    def wait_for(self, text: str, count: int = 1, timeout: float = 60) -> None:
        wait_for(lambda: self.read().count(text) >= count, timeout=timeout,
                 message=lambda: f"{text!r} x{count} not on screen:\n{self.screen[-2000:]}")

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def test_the_up_arrow_recalls_the_last_command_and_history_survives_a_restart(tmp_path):
    term = Terminal(tmp_path)
    try:
        term.wait_for("/milvus>")
        term.type("/milvus whoami\r")
        term.wait_for("local: admin")
        term.wait_for("/milvus>", count=2)
        term.type(UP + "\r")  # the same command again, not "^[[A"
        term.wait_for("local: admin", count=2)
        assert "^[[A" not in term.screen
        term.type("exit\r")
    finally:
        term.close()

    again = Terminal(tmp_path)  # history is kept in the data dir
    try:
        again.wait_for("/milvus>")
        again.type(UP + UP + "\r")  # "exit" was the last line, whoami the one before
        again.wait_for("local: admin")
    finally:
        again.close()


def test_run_prints_no_buttons_it_cannot_press_and_no_escape_codes_into_a_pipe(tmp_path):
    out = cli("run", "/milvus plan --vectors 1M --dim 128", data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Change inputs" not in out.stdout and "[1]" not in out.stdout
    assert "\x1b[" not in out.stdout
    assert "Raw data: " in out.stdout  # rendered, not *Raw data*


def test_color_only_on_a_terminal_and_never_with_no_color(tmp_path):
    env = {**os.environ, "MILVUS_CHATOPS_DATA_DIR": str(tmp_path)}
    env.pop("NO_COLOR", None)
    env.pop("MILVUS_CHATOPS_CONFIG", None)
    argv = [sys.executable, "-m", "bot", "run", "/milvus whoami"]

    def on_a_terminal(extra: dict[str, str]) -> str:
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(ROOT)
            os.execve(sys.executable, argv, {**env, "TERM": "xterm", **extra})  # noqa: S606
        screen = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        os.waitpid(pid, 0)
        os.close(fd)
        return screen.decode(errors="replace")

    assert "\x1b[1m" in on_a_terminal({})
    assert "\x1b[" not in on_a_terminal({"NO_COLOR": "1"})
    piped = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and "\x1b[" not in piped.stdout
