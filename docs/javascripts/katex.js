// Renders the math that pymdownx.arithmatex (generic mode) writes as \( \) and \[ \],
// with the KaTeX copy shipped in assets/katex (see docs/vendor_katex.py).
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
  });
});
