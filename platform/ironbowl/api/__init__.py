"""The API base: authentication, tenant-scoped views, errors, pagination and throttling."""
