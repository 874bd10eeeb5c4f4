// Renders the math that pymdownx.arithmatex (generic mode) writes as \( \) and \[ \].
document$.subscribe(({ body }) => {
  if (typeof renderMathInElement === "undefined") return;  // KaTeX not loaded (offline)
  renderMathInElement(body, {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
  });
});
