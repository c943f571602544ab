// A picker (<select>) over a list that can be long: the first page of choices at once and, when the list has more,
// a filter box beside it that asks the server for the ones matching what is typed. A studio with thousands of
// mappings or sources can still pick any of them; a small one sees a plain select.
import { get } from "./api.js";
import { debounce, h } from "./dom.js";

export const PICKER_PAGE_SIZE = 100;
const TYPING_PAUSE_MS = 200;

// `url`: the API list URL of every choice (its own filters included; the picker adds `search` and `page_size`);
// `option(row)`: [value, label, title]; `noun`: what is picked ("mapping"); `none`: the text shown when nothing
// exists. Returns { reload }.
export function searchablePicker(select, { url, option, noun, none }) {
  const filter = h("input", {
    type: "search",
    class: "picker-filter",
    placeholder: `Find a ${noun}…`,
    "aria-label": `Find a ${noun}`,
    "aria-controls": select.id,
    hidden: true,
  });
  const more = h("span", { id: `${select.id}-more`, class: "hint picker-more", "aria-live": "polite", hidden: true });
  (select.closest("label") || select).after(filter, more);
  let asked = 0;

  async function load() {
    const text = filter.value.trim();
    const seq = ++asked;
    const query = new URLSearchParams({ page_size: String(PICKER_PAGE_SIZE) });
    if (text) query.set("search", text);
    const page = await get(`${url}${url.includes("?") ? "&" : "?"}${query}`);
    if (seq !== asked) return; // the analyst typed on: a newer answer is coming
    const chosen = select.value;
    const options = page.results.map(option);
    select.replaceChildren(...(options.length
      ? options.map(([value, label, title]) => h("option", { value, title: title || value }, label))
      : [h("option", { value: "" }, text ? `no ${noun} matches “${text}”` : none)]));
    if (options.some(([value]) => value === chosen)) select.value = chosen;
    if (select.value !== chosen) select.dispatchEvent(new Event("change")); // what follows the choice follows it
    if (page.count > options.length) filter.hidden = false; // once shown it stays, so the text can be cleared
    more.hidden = page.count <= options.length;
    more.textContent = `${options.length} of ${page.count.toLocaleString("en")} shown: type to narrow`;
  }

  filter.addEventListener("input", debounce(load, TYPING_PAUSE_MS));
  filter.addEventListener("keydown", (event) => {
    if (event.key === "Enter") event.preventDefault(); // Enter in the filter must not submit the form around it
  });
  return { reload: load };
}
