"""One deploy or rollback at a time per environment: a lease in the state store, shared by replicas."""

from __future__ import annotations

from bot.context import Runtime
from bot.errors import Conflict


def lock_name(env: str) -> str:
    return f"deploy:{env}"


def check_lock(runtime: Runtime, env: str) -> None:
    """Refuse early, with who holds it, rather than after an approval was asked for."""
    holder = runtime.store.holder(lock_name(env))
    if holder:
        raise Conflict(f"Deploy of {holder.description} in progress in `{env}`; try again when it has finished.")
