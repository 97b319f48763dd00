#!/usr/bin/env python3
"""Checks the book before and after `mdbook build docs`; run by .ci/run.

mdbook 0.4 logs a broken include and still exits 0, and it does not check links, so this
script fails on:
  - a chapter file under docs/src that SUMMARY.md does not list, or a listed one that is missing;
  - an {{#include path}} or {{#include path:anchor}} whose file or anchor does not exist;
  - a relative link or image whose target does not exist, or a #fragment with no such heading;
  - any ERROR or WARN line that mdbook prints while building;
  - a {{#results FILE:ROWS}} table whose result file or rows do not exist (results.py renders
    them at build time, so a table cannot go stale; a marker can point at nothing);
  - a diagram that no longer shows a fact of the code it depicts (DIAGRAMS: a phrase that
    must appear in both the picture and the source file), or a chapter that quotes the start
    of a statement without the rest the code writes (QUOTED).
"""
import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
SRC = DOCS / "src"
errors = []


def slug(heading: str) -> str:
    # mdbook's heading ids: lowercase, spaces to '-', keep alphanumerics, '-' and '_'.
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    text = text.replace("`", "")
    return "".join(c if c.isalnum() or c in "-_" else ("-" if c == " " else "") for c in text)


def headings(md: Path) -> set:
    ids, fence = set(), False
    for line in md.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"^#{1,6}\s+(.*?)\s*#*$", line)):
            ids.add(slug(m.group(1)))
    return ids


summary = (SRC / "SUMMARY.md").read_text()
listed = {Path(p) for p in re.findall(r"\]\(([^)#]+\.md)\)", summary)}
for p in listed:
    if not (SRC / p).is_file():
        errors.append(f"SUMMARY.md lists {p}, which does not exist")
for md in SRC.rglob("*.md"):
    rel = md.relative_to(SRC)
    if rel != Path("SUMMARY.md") and rel not in listed:
        errors.append(f"{rel} is not listed in SUMMARY.md")

for md in SRC.rglob("*.md"):
    text = md.read_text()
    rel = md.relative_to(SRC)
    for target in re.findall(r"\{\{#(?:include|rustdoc_include)\s+([^}\s]+)\s*\}\}", text):
        path, _, anchor = target.partition(":")
        file = (md.parent / path).resolve()
        if not file.is_file():
            errors.append(f"{rel}: include {target}: no file {file}")
            continue
        if anchor and not anchor[0].isdigit():
            body = file.read_text()
            if not re.search(rf"ANCHOR:\s*{re.escape(anchor)}\b", body) or not re.search(
                rf"ANCHOR_END:\s*{re.escape(anchor)}\b", body
            ):
                errors.append(f"{rel}: include {target}: no anchor {anchor!r} in {path}")
    # Links outside code blocks.
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    for link in re.findall(r"\]\(([^)\s]+)\)", prose) + re.findall(r'src="([^"]+)"', prose):
        if re.match(r"^[a-z]+:", link):
            continue  # external (https:, mailto:)
        path, _, frag = link.partition("#")
        target = (md.parent / path).resolve() if path else md
        if not target.exists():
            errors.append(f"{rel}: broken link {link}")
        elif frag and target.suffix == ".md" and frag not in headings(target):
            errors.append(f"{rel}: link {link}: no heading #{frag}")

# Measured tables: every marker must render from its result file.
sys.path.insert(0, str(DOCS))
import results  # noqa: E402

for md in SRC.rglob("*.md"):
    try:
        results.expand(md.read_text())
    except (KeyError, ValueError) as e:
        errors.append(f"{md.relative_to(SRC)}: measured values: {e.args[0]}")

# Diagrams against the code: each drawn fact is named by a phrase that must appear in the
# picture and in the code it depicts. When the code changes the phrase, this fails until the
# picture is redrawn (and the phrase updated here).
ROOT = DOCS.parent
DIAGRAMS = {
    "images/separate-schema.svg": [
        ("separate-schema/src/template.rs", "INCLUDING ALL EXCLUDING INDEXES"),
        ("core/src/plumbing/pin.rs", "tenancy_pinned_tenant"),
        ("separate-schema/src/options.rs", "tenant_template"),
    ],
    "images/separate-db.svg": [
        ("separate-db/src/options.rs", "connections_per_server"),
        ("separate-db/src/options.rs", "connections_per_database"),
        ("separate-db/src/options.rs", "control_connections"),
        ("separate-db/src/router.rs", "budget_timeout"),
        ("separate-db/src/router.rs", "PoolTimeout"),
        ("separate-db/src/router.rs", "least recently used"),
    ],
    "images/shared-schema.svg": [
        ("shared-schema/src/binding.rs", "set_config('tenancy.tenant_id', $1, false)"),
        ("shared-schema/src/binding.rs", "SET LOCAL ROLE"),
        ("shared-schema/src/options.rs", "RlsBinding::Session"),
        ("shared-schema/src/options.rs", "tenancy_app"),
    ],
    "images/placements.svg": [
        ("separate-schema/src/options.rs", "tenant_template"),
        ("core/src/plumbing/control.rs", "tenants"),
        ("shared-schema/src/security.rs", "tenancy.tenant_id"),
    ],
}
for image, facts in DIAGRAMS.items():
    drawn = (SRC / image).read_text() if (SRC / image).is_file() else ""
    if not drawn:
        errors.append(f"{image}: no such diagram")
        continue
    drawn = drawn.replace("&apos;", "'").replace("&quot;", '"').replace("&amp;", "&")
    for source, phrase in facts:
        code = (ROOT / source).read_text() if (ROOT / source).is_file() else ""
        if phrase not in code:
            errors.append(f"{image}: {source} no longer says {phrase!r}: redraw the diagram")
        if phrase not in drawn:
            errors.append(f"{image}: does not show {phrase!r} (from {source})")

# Prose that quotes a statement of the code: where a chapter names the start of the statement,
# it must quote it as the code writes it (the line broken anywhere).
QUOTED = [
    ("separate-schema/src/template.rs", "INCLUDING ALL", "INCLUDING ALL EXCLUDING INDEXES"),
]
for source, start, whole in QUOTED:
    if whole not in (ROOT / source).read_text():
        errors.append(f"{source} no longer says {whole!r}: update QUOTED and the chapters")
    for md in sorted(SRC.glob("*.md")):
        text = " ".join(md.read_text().split())
        for m in re.finditer(re.escape(start), text):
            if not text.startswith(whole, m.start()):
                errors.append(f"{md.name}: quotes {start!r} without the rest of {whole!r} ({source})")

if "--build" in sys.argv:
    out = subprocess.run(
        [sys.argv[sys.argv.index("--build") + 1], "build", str(DOCS)],
        capture_output=True,
        text=True,
    )
    log = out.stdout + out.stderr
    if out.returncode != 0:
        errors.append(f"mdbook build failed:\n{log}")
    errors += [f"mdbook: {l}" for l in log.splitlines() if "[ERROR]" in l or "[WARN]" in l]
    # What a reader would see raw: a results marker the preprocessor did not render.
    for page in sorted((DOCS / "book").rglob("*.html")):
        for m in re.finditer(r"\{\{#(?:results|value|target|ratio)\b[^}<]*", page.read_text()):
            errors.append(f"{page.relative_to(DOCS)}: a marker reached the page: {m.group(0)!r}")

for e in errors:
    print(f"docs: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
