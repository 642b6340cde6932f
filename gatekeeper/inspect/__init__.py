"""`gatekeeper audit`: existing cluster objects checked against the admission rules.

Not the server's audit log (gatekeeper/server/audit.py): this audits a cluster's objects.
checks.py is pure (objects in, violations out); sources.py reads a dump or a live cluster;
reports.py renders text, JSON, SARIF and PolicyReport YAML.
"""
