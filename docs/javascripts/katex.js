// Renders the math that pymdownx.arithmatex (generic mode) leaves in the page.
document$.subscribe(({ body }) => {
  if (typeof renderMathInElement === "undefined") return;  // KaTeX not loaded (offline)
  renderMathInElement(body, {
    delimiters: [
      { left: "$$", right: "$$", display: true },
      { left: "$", right: "$", display: false },
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
  });
});
