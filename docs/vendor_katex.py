"""Vendors KaTeX into ``docs/assets/katex/``, so the site renders maths offline.

The documentation's formulas (``pymdownx.arithmatex`` writes them as ``\\(...\\)``
and ``\\[...\\]``) are typeset in the browser by KaTeX. The site ships its own
copy instead of loading it from a CDN: a page read offline, or behind a
firewall, shows rendered formulas and makes no network request.

What is kept from the npm package ``katex`` (MIT licence, ``LICENSE`` beside
the files): ``katex.min.js``, ``contrib/auto-render.min.js``,
``katex.min.css`` and the WOFF2 fonts. The stylesheet's ``@font-face`` rules
are rewritten to list the WOFF2 file only (every browser KaTeX supports reads
WOFF2; the WOFF/TTF copies would triple the size for no reader), so every
``url()`` in it names a file that is there (``tests/test_docs.py`` checks).
``SOURCE.txt`` records the version and the tarball's checksum.

To update: change ``VERSION`` and run ``python docs/vendor_katex.py`` (needs
``npm``, which fetches the package from the npm registry), then rebuild the
site and run ``pytest tests/test_docs.py``.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "0.16.22"
DEST = Path(__file__).resolve().parent / "assets" / "katex"
KEEP = {
    "package/LICENSE": "LICENSE",
    "package/dist/katex.min.js": "katex.min.js",
    "package/dist/katex.min.css": "katex.min.css",
    "package/dist/contrib/auto-render.min.js": "contrib/auto-render.min.js",
}
_FONT = re.compile(r"^package/dist/(fonts/[\w-]+\.woff2)$")
# In each @font-face: ",url(fonts/X.woff) format("woff"),url(fonts/X.ttf) format("truetype")"
_NOT_WOFF2 = re.compile(r',url\(fonts/[\w-]+\.(?:woff|ttf)\) format\("(?:woff|truetype)"\)')
_URL = re.compile(r"url\(([^)]*)\)")


def woff2_only(css: str) -> str:
    """``css`` with every ``@font-face`` source but the WOFF2 one removed."""
    out = _NOT_WOFF2.sub("", css)
    others = [u for u in _URL.findall(out) if not u.endswith(".woff2")]
    if others:
        raise ValueError(f"katex.min.css: expected only WOFF2 font URLs left, got {others[:3]}")
    return out


def fetch(version: str) -> bytes:
    """The npm tarball of ``katex@version``."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["npm", "pack", f"katex@{version}", "--pack-destination", tmp, "--silent"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (tarball,) = Path(tmp).glob("katex-*.tgz")
        return tarball.read_bytes()


def vendor(tarball: bytes, version: str, dest: Path = DEST) -> list[Path]:
    """Writes the kept files of ``tarball`` under ``dest`` (replacing it); returns them."""
    if dest.exists():
        shutil.rmtree(dest)
    written = []
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for member in tar.getmembers():
            font = _FONT.match(member.name)
            name = KEEP.get(member.name) or (font.group(1) if font else None)
            if name is None or not member.isfile():
                continue
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if name == "katex.min.css":
                data = woff2_only(data.decode("utf-8")).encode("utf-8")
            path = dest / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(path)
    missing = set(KEEP.values()) - {p.relative_to(dest).as_posix() for p in written}
    if missing or not any(p.suffix == ".woff2" for p in written):
        raise ValueError(
            f"katex@{version}: expected {sorted(KEEP.values())} and fonts, missing {sorted(missing)}"
        )
    source = dest / "SOURCE.txt"
    source.write_text(
        f"KaTeX {version}, from the npm package katex@{version} (MIT licence: LICENSE).\n"
        f"Tarball sha256: {hashlib.sha256(tarball).hexdigest()}\n"
        "Written by docs/vendor_katex.py: dist/katex.min.js, dist/katex.min.css (WOFF2 fonts\n"
        "only), dist/contrib/auto-render.min.js, dist/fonts/*.woff2. Do not edit by hand.\n",
        encoding="utf-8",
    )
    return [*written, source]


def main() -> int:
    files = vendor(fetch(VERSION), VERSION)
    size = sum(p.stat().st_size for p in files)
    print(f"wrote {len(files)} files ({size / 1024:.0f} KiB) under {DEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
