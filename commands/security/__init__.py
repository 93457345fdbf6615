"""/milvus security | user | role: how Milvus itself is secured. Secure Helm values (values.py), the
live audit (audit.py, commands.py), users and roles from chat behind approval (users.py), and the
certificate expiry watch (watch.py)."""

from __future__ import annotations

from bot.registry import Registry
from commands.security import commands, users, watch


def register(registry: Registry) -> None:
    registry.add(commands.security_command, users.user_list, users.user_create, users.user_password,
                 users.user_drop, users.role_list, users.role_create, users.role_drop, users.role_grant,
                 users.role_revoke)
    registry.executor(users.APPROVAL_KIND, users.execute)
    registry.job_source(watch.certificate_jobs)
    registry.task(watch.TASK, watch.check_certificate)
