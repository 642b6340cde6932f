"""Objects and quota usage in etcd, shared by replicas: a watched copy, compare-and-swap charges."""
