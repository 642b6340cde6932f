"""The one place that knows every admission plugin: name -> how to build it.

Plugins are imported lazily, so a configuration names only what it uses and a plugin module
that fails to import breaks only the configurations that enable it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from gatekeeper.admission.plugin import Plugin
from gatekeeper.errors import InvalidInput

PROJECTED: Final = "projected"
SECRET: Final = "secret"
TOKEN_VOLUME_MODES = (PROJECTED, SECRET)


@dataclass(frozen=True, slots=True)
class PluginOptions:
    """Plugin settings that come from flags rather than from the cluster state."""

    service_account_token_volume: str = PROJECTED  # "projected" (current Kubernetes) or "secret"


# Kubernetes' recommended order (pkg/kubeapiserver/options/plugins.go, AllOrderedPlugins);
# the chain runs enabled plugins in this order whatever order the flag lists them in.
_PLUGINS: dict[str, tuple[str, str]] = {
    "NamespaceLifecycle": ("namespace_lifecycle", "NamespaceLifecycle"),
    "NamespaceExists": ("namespace_exists", "NamespaceExists"),
    "SecurityContextDeny": ("security_context_deny", "SecurityContextDeny"),
    "LimitRanger": ("limit_ranger", "LimitRanger"),
    "ServiceAccount": ("service_account", "ServiceAccount"),
    "ResourceQuota": ("resource_quota", "ResourceQuota"),
}
KNOWN_PLUGINS: tuple[str, ...] = tuple(_PLUGINS)


class UnknownPlugin(InvalidInput):
    """A plugin name that is not registered, or whose module cannot be loaded."""


class PluginNotBuilt(UnknownPlugin):
    """A registered plugin whose module does not exist (yet) in this checkout."""


def _plugin_class(name: str) -> Callable[..., Plugin]:
    module_name, class_name = _PLUGINS[name]
    qualified = f"gatekeeper.admission.plugins.{module_name}"
    try:
        module = importlib.import_module(qualified)
    except ModuleNotFoundError as exc:
        if exc.name != qualified:
            raise  # the plugin exists but something it imports is missing: a real error
        raise PluginNotBuilt(f"admission plugin {name} is not built in this checkout") from None
    cls: Callable[..., Plugin] = getattr(module, class_name)
    return cls


def plugin_registered(name: str) -> bool:
    """True when `name` is registered and its module exists (tests skip a plugin not yet built)."""
    if name not in _PLUGINS:
        return False
    try:
        _plugin_class(name)
    except PluginNotBuilt:
        return False
    return True


def check_names(names: Iterable[str]) -> tuple[str, ...]:
    """The enabled names in Kubernetes' order; UnknownPlugin lists the known ones."""
    wanted = list(names)
    unknown = [n for n in wanted if n not in _PLUGINS]
    if unknown:
        raise UnknownPlugin(
            f"unknown admission plugin(s) {', '.join(unknown)}; known plugins: {', '.join(KNOWN_PLUGINS)}"
        )
    return tuple(n for n in KNOWN_PLUGINS if n in wanted)


def build_plugins(names: Iterable[str], options: PluginOptions | None = None) -> list[Plugin]:
    options = options or PluginOptions()
    plugins: list[Plugin] = []
    for name in check_names(names):
        cls = _plugin_class(name)
        plugins.append(cls(options) if getattr(cls, "takes_options", False) else cls())
    return plugins


def parse_plugin_list(value: str) -> tuple[str, ...]:
    """A comma-separated flag value ("NamespaceLifecycle,LimitRanger") as a list of names."""
    return tuple(part.strip() for part in value.split(",") if part.strip())
