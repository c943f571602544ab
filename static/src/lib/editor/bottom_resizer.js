// The editor's bottom panel height: dragged (or arrow keys on the handle #bottom-resizer), kept in this browser.
import { $ } from "../dom.js";

const BOTTOM_KEY = "fhirstudio:editor:bottom-height";

export function bottomPanelResizer() {
  const layout = $(".editor-layout");
  const resizer = $("#bottom-resizer");

  function setBottomHeight(pixels, remember = false) {
    const most = Math.max(120, layout.clientHeight - 160); // the panes above keep room to work in
    const height = Math.round(Math.min(Math.max(pixels, 80), most));
    layout.style.setProperty("--bottom-height", `${height}px`);
    resizer.setAttribute("aria-valuenow", String(height));
    resizer.setAttribute("aria-valuemax", String(most));
    if (remember) localStorage.setItem(BOTTOM_KEY, String(height));
  }

  resizer.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    resizer.setPointerCapture(event.pointerId);
    const startY = event.clientY;
    const startHeight = $(".bottom").getBoundingClientRect().height;
    const move = (moved) => setBottomHeight(startHeight + startY - moved.clientY);
    resizer.addEventListener("pointermove", move);
    resizer.addEventListener("pointerup", (up) => {
      resizer.removeEventListener("pointermove", move);
      setBottomHeight(startHeight + startY - up.clientY, true);
    }, { once: true });
  });
  resizer.addEventListener("keydown", (event) => {
    const step = { ArrowUp: 24, ArrowDown: -24, PageUp: 120, PageDown: -120 }[event.key];
    if (!step) return;
    event.preventDefault();
    setBottomHeight($(".bottom").getBoundingClientRect().height + step, true);
  });
  if (localStorage.getItem(BOTTOM_KEY)) setBottomHeight(Number(localStorage.getItem(BOTTOM_KEY)));
}
