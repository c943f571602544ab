// Run `show` each time a tab panel is unhidden (by a click or the arrow keys of lib/tabs.js): the editor's hidden tabs
// (the OperationOutcome, the source tree) are built or loaded when shown, not on every change while hidden.
export function whenShown(panel, show) {
  new MutationObserver(() => panel.hidden || show()).observe(panel, { attributes: true, attributeFilter: ["hidden"] });
}
