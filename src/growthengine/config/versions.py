"""The merged, versioned config (CONTRACT.md 11): the shipped defaults, the config file, then the latest stored
version of each segment, flow and template (changed over the API, or imported from the file when it changed).
Every process loads it the same way, and reloads when the stored config's stamp moves."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
import yaml

from growthengine.config.errors import ConfigError, ConfigIssue
from growthengine.config.loader import STORED, EngineConfig, load_config, read_document
from growthengine.content.templates import TemplateRegistry
from growthengine.storage.config_store import CONFIG_KINDS, ConfigKind, ConfigStore, ConfigVersion
from growthengine.storage.unit_of_work import Store

SECTIONS: dict[ConfigKind, str] = {"segment": "segments", "flow": "flows", "template": "templates"}
FILE_AUTHOR = "config file"
"""``changed_by`` of the versions imported from a config file."""


def stored_overrides(conn: sa.Connection) -> dict[str, Any]:
    """The latest stored version of every item, as a config document (deleted items as ``null``)."""
    document: dict[str, Any] = {}
    for item in ConfigStore(conn).current():
        document.setdefault(SECTIONS[item.kind], {})[item.key] = None if item.deleted else item.body
    return document


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _file_items(path: Path) -> dict[ConfigKind, dict[str, Any]]:
    data, _lines = read_document(path)
    items: dict[ConfigKind, dict[str, Any]] = {}
    for kind in CONFIG_KINDS:
        block = data.get(SECTIONS[kind])
        if isinstance(block, dict):
            items[kind] = {str(k): orjson.loads(_canonical(v)) for k, v in block.items()}
    return items


Change = tuple[ConfigKind, str, Any | None]
"""One item's new version: kind, key, and its body (``None``: deleted)."""


def file_changes(conn: sa.Connection, path: Path) -> list[Change]:
    """The items of the config file that differ from their last import (they become new base versions)."""
    store = ConfigStore(conn)
    changes: list[Change] = []
    for kind, block in _file_items(path).items():
        for key, body in block.items():
            last = store.last_by(kind, key, FILE_AUTHOR)
            if last is None or _canonical(last.body) != _canonical(body):
                changes.append((kind, key, body))
    return changes


def record(conn: sa.Connection, changes: list[Change], *, changed_by: str, now_us: int) -> None:
    store = ConfigStore(conn)
    for kind, key, body in changes:
        current = store.latest(kind, key)
        store.record(kind, key, body, before=None if current is None or current.deleted else current.body,
                     changed_by=changed_by, now_us=now_us)


def load_merged(conn: sa.Connection, config_file: Path | None, *, templates: TemplateRegistry | None = None,
                changes: list[Change] | None = None) -> EngineConfig:
    """The merged config, with ``changes`` laid over it as storing them would leave it. Raises
    :class:`ConfigError` listing every problem."""
    overrides = stored_overrides(conn)
    for kind, key, body in changes or []:
        overrides.setdefault(SECTIONS[kind], {})[key] = body
    try:
        return load_config(config_file, templates=templates, overrides=overrides)
    except ConfigError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        # The loaders read YAML shapes; a value of a type they do not expect where they do not look for one (a
        # mapping where a key belongs) is still the change's problem, never the engine's.
        where = ", ".join(f"{SECTIONS[kind]}.{key}" for kind, key, _ in changes or []) or "(config)"
        raise ConfigError([ConfigIssue(STORED, where, f"a value has a type that does not fit there ({exc})")]) \
            from None


def load_and_import(conn: sa.Connection, config_file: Path | None, now_us: int, *,
                    templates: TemplateRegistry | None = None) -> tuple[EngineConfig, int]:
    """The merged config after importing the file's changed items (only when the result is valid), and the
    stored config's stamp it reflects."""
    changes = file_changes(conn, config_file) if config_file is not None else []
    config = load_merged(conn, config_file, templates=templates, changes=changes)
    record(conn, changes, changed_by=FILE_AUTHOR, now_us=now_us)
    return config, ConfigStore(conn).stamp()


def load_and_import_once(store: Store, config_file: Path | None, now_us: int, *,
                         templates: TemplateRegistry | None = None) -> tuple[EngineConfig, int]:
    """:func:`load_and_import` in its own transaction; when another process imported the same change at the same
    moment (the version numbers collide), its import is read and kept."""
    for attempt in range(3):
        try:
            with store.transaction() as tx:
                return load_and_import(tx.conn, config_file, now_us, templates=templates)
        except sa.exc.IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def item(config: EngineConfig, kind: ConfigKind, key: str) -> Any | None:
    """One item of the merged config in its YAML shape (``None`` when there is none)."""
    if kind == "template":
        if config.templates is None or key not in config.templates:
            return None
        return export_document(config)["templates"].get(key)
    block = config.raw.get(SECTIONS[kind])
    value = block.get(key) if isinstance(block, dict) else None
    return orjson.loads(_canonical(value)) if value is not None else None


@functools.lru_cache(maxsize=1)
def _shipped_templates() -> dict[str, Any]:
    """The shipped templates in their YAML shape (read once; callers copy before changing)."""
    from importlib import resources

    text = resources.files("growthengine.content").joinpath("templates.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return dict(data.get("templates") or {})


def export_document(config: EngineConfig) -> dict[str, Any]:
    """The merged config as one config document: every segment, flow and template in its YAML shape."""
    document: dict[str, Any] = {}
    for section in ("segments", "flows"):
        block = config.raw.get(section)
        document[section] = {k: v for k, v in block.items() if v is not None} if isinstance(block, dict) else {}
    templates = {**_shipped_templates()}
    block = config.raw.get("templates")
    if isinstance(block, dict):
        templates.update(block)
    known = set(config.templates.keys()) if config.templates is not None else set(templates)
    document["templates"] = {k: v for k, v in templates.items() if v is not None and k in known}
    return orjson.loads(orjson.dumps(document))  # type: ignore[no-any-return]


def export_yaml(config: EngineConfig) -> str:
    return yaml.safe_dump(export_document(config), allow_unicode=True, sort_keys=False, width=120)


def history_view(version: ConfigVersion) -> dict[str, Any]:
    from growthengine.clock import from_us
    from growthengine.timefmt import format_instant

    return {"id": version.id, "kind": version.kind, "key": version.key, "version": version.version,
            "action": "delete" if version.deleted else ("create" if version.before is None else "update"),
            "changedBy": version.changed_by, "changedAt": format_instant(from_us(version.changed_us)),
            "before": version.before, "after": version.body}


