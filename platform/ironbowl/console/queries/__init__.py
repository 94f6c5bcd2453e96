"""Read-only queries the console pages share: each starts from the organization."""
