"""Where cluster state and quota usage live: memory, SQLite, etcd, or the live API server; each implements
admission.state.Store and its QuotaLedger in one folder."""
