"""Adapt the engine's source to the modules the Go module proxy serves here.

The proxy refuses (403) every version of github.com/vito/dang/v2, github.com/vito/tuist and
the pinned github.com/vito/midterm. The CLI's terminal UI cannot do without tuist, so only
the engine side is adapted, by three edits:

- the Dang SDK always uses its v1 implementation (github.com/vito/dang v1 is served);
- the interactive-terminal banner is printed with termenv instead of the CLI's UI package;
- recorded LLM conversations are compared verbatim instead of through the test scrubber.

None of them touches what the pipeline uses (containers, Dockerfile builds, the Python
SDK). Every edit must apply exactly once; a source that changed fails loudly.

Usage: python3 patch_source.py SOURCE_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

EDITS: dict[str, list[tuple[str, str]]] = {
    "core/sdk/dang_sdk.go": [
        ('\tdangv2 "github.com/dagger/dagger/core/sdk/dang/v2"\n', ""),
        ("return dangv2.Impl{}", "return dangv1.Impl{}"),
    ],
    "core/terminal.go": [
        ('\t"github.com/dagger/dagger/dagql/idtui"\n', ""),
        ("output := idtui.NewOutput(term.Stderr)", "output := termenv.NewOutput(term.Stderr)"),
        ("output.String(idtui.DotFilled)", 'output.String("*")'),
        ("output.String(idtui.IconFailure)", 'output.String("x")'),
        (
            'dump := idtui.Dump{Newline: "\\r\\n", Prefix: "    "}',
            'dump := struct{ Newline string }{Newline: "\\r\\n"}',
        ),
        (
            "if err := dump.DumpID(output, dumpID); err != nil {",
            "if _, err := fmt.Fprint(output, dumpID.Display()); err != nil {",
        ),
    ],
    "core/llm_replay.go": [
        ('\t"github.com/dagger/dagger/util/scrub"\n', ""),
        (
            "scrub.Stabilize(message.Content) != scrub.Stabilize(c.messages[i].Content)",
            "message.Content != c.messages[i].Content",
        ),
    ],
}


def apply(source: Path) -> None:
    """Apply every edit under ``source``; raise if one does not match exactly once."""
    for relative, edits in EDITS.items():
        path = source / relative
        text = path.read_text()
        for old, new in edits:
            count = text.count(old)
            if count != 1:
                raise SystemExit(f"{relative}: expected 1 match of {old!r}, found {count}")
            text = text.replace(old, new)
        path.write_text(text)


if __name__ == "__main__":
    apply(Path(sys.argv[1]))
