"""Templates of the merged config: the shipped ones, overlaid by a config file's ``templates:`` block and by the
templates stored over the API (``null`` removes one). Every problem is reported by file and path."""

from __future__ import annotations

from typing import Any

from growthengine.config.errors import ConfigIssue
from growthengine.config.yaml_lines import Path
from growthengine.content.template_loading import TemplateSource, read_template_block
from growthengine.content.templates import RenderError, TemplateRegistry


def merge_templates(base: TemplateRegistry, documents: list[tuple[str, dict[str, Any], dict[Path, int]]]
                    ) -> tuple[TemplateRegistry, list[ConfigIssue]]:
    """``base`` with every document's ``templates:`` laid over it in order; the base itself when none has any."""
    blocks = [(name, data["templates"], lines) for name, data, lines in documents
              if isinstance(data, dict) and data.get("templates") is not None]
    if not blocks:
        return base, []
    sources: dict[str, TemplateSource] = base.sources()
    partials = base.partials()
    issues: list[ConfigIssue] = []
    for name, block, lines in blocks:
        read, problems = read_template_block(block, file=name, lines=lines)
        issues.extend(sorted(problems, key=lambda issue: issue.line or 0))  # in the file's order
        for key, source in read.items():
            if source is None:
                sources.pop(key, None)
                continue
            try:
                TemplateRegistry({key: source}, partials)  # compiles it alone: a Jinja error names its template
            except RenderError as exc:
                issues.append(ConfigIssue(name, f"templates.{key}", str(exc), lines.get(("templates", key))))
                continue
            sources[key] = source
    return TemplateRegistry(sources, partials), issues
