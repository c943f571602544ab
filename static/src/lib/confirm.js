// The question asked before an action that cannot be undone (templates/partials/confirm_dialog.html): it names what
// the action does, the confirming button says it again, and Escape or Cancel answers no. Resolves true when confirmed.
import { $ } from "./dom.js";

export function confirmAction({ title, text, ok, cancel = "Cancel" }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = ok;
  $("#confirm-cancel").textContent = cancel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
}
