"""/milvus deploy | rollback | history: Helm releases per environment, behind four-eyes approval.

commands.py holds the argument models and handlers; prepare.py what a deploy would apply (values,
diff, risks, preview); execute.py the rollout and its validation; rollout.py the pod watcher;
rollback.py and history.py the other two commands' work.
"""

from __future__ import annotations

from bot.registry import Registry
from commands.deploy import commands, execute, rollback


def register(registry: Registry) -> None:
    registry.add(commands.deploy, commands.rollback, commands.history)
    registry.executor("deploy", execute.execute_deploy)
    registry.executor("rollback", rollback.execute_rollback)
