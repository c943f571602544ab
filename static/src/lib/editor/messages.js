// How the editor page speaks outside its panes: a yes/no question in its own dialog, a banner above the editors, and a
// dialog field's own error beside it.
import { $, h } from "../dom.js";

// A yes/no question in the page's own dialog; resolves true only on the confirming button (Cancel has the focus, so
// Enter or Escape is a no).
export function ask({ title, message, items = [], confirm, danger = false }) {
  const dialog = $("#ask-dialog");
  $("#ask-title").textContent = title;
  $("#ask-message").textContent = message;
  $("#ask-items").replaceChildren(...items.map((item) => h("li", {}, item)));
  $("#ask-items").hidden = !items.length;
  const yes = $("#ask-yes");
  yes.textContent = confirm;
  yes.className = danger ? "danger" : "primary";
  dialog.returnValue = "";
  dialog.showModal();
  $("#ask-no").focus();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true }));
}

// The banner above the editors: a sentence and a button per [label, action].
export function banner(text, actions = [], kind = "") {
  const box = $("#banner");
  box.replaceChildren(h("span", {}, text), ...actions.map(([label, run]) => h("button", { type: "button", onclick: run }, label)));
  box.className = `banner ${kind}`.trim();
  box.hidden = false;
}

// A field's own error, said next to it (and to screen readers through aria-describedby).
export function fieldError(field, box, messages) {
  box.replaceChildren(...(messages || []).map((message) => h("div", {}, message)));
  box.hidden = !messages?.length;
  if (messages?.length) field.setAttribute("aria-invalid", "true");
  else field.removeAttribute("aria-invalid");
}
