"""Organizations, members, roles, invitations, API keys, the audit log — the tenant wall."""
