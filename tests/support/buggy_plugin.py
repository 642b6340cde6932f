"""An admission plugin with a bug, registered through the registry as any plugin is, and a
`gatekeeper` command line that has it: `python -m tests.support.buggy_plugin serve ...`.

Buggy reads a label every pod is assumed to have: a pod without it raises KeyError, which must
reach the server as a bug (a logged 500), not as a refusal blaming the object."""

from __future__ import annotations

import sys
from typing import ClassVar

from gatekeeper.admission.patch import Patch
from gatekeeper.admission.plugin import DEFAULT_OPTIONS, PluginOptions, Warnings
from gatekeeper.admission.registry import register
from gatekeeper.admission.request import AdmissionRequest, JSONObject
from gatekeeper.admission.state import Store

NAME = "Buggy"
LABEL = "team"


class Buggy:
    name: ClassVar[str] = NAME

    def __init__(self, options: PluginOptions = DEFAULT_OPTIONS) -> None:
        self.options = options

    def handles(self, request: AdmissionRequest) -> bool:
        return request.is_core("pods") and request.object is not None

    def admit(self, request: AdmissionRequest, obj: JSONObject, store: Store, patch: Patch) -> Warnings:
        owner = obj["metadata"]["labels"][LABEL]
        patch.put(obj, (), ("metadata", "annotations", "owner"), owner)
        return None


if __name__ == "__main__":
    from gatekeeper.cli import main

    register(NAME, Buggy)
    sys.exit(main(sys.argv[1:]))
