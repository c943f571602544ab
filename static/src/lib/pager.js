// The one pager of every list page: a <nav> holding a previous button, a place that says where the list is, and a
// next button, shown for one page of an API list answer ({count, previous, next, results}). The page keeps its own
// page number (a variable, or a hidden `page` field kept in the address); the pager only steps it and shows answers.

// The page number asked for in an address or a list's filters (?page=): 1 and up, whatever was typed there.
export function pageNumber(params) {
  return Math.max(1, Number.parseInt(params.get("page") || "1", 10) || 1);
}

// "26–50 of 50": the rows shown, of how many ("" for an empty list).
export function rowsPlace(result, number, size) {
  const first = (number - 1) * size + 1;
  return result.count ? `${first}–${first + result.results.length - 1} of ${result.count}` : "";
}

// "Page 2 of 3".
export function pagePlace(result, number, size) {
  return `Page ${number} of ${Math.max(1, Math.ceil(result.count / size))}`;
}

// The API answers 404 for a page past the last (rows were deleted, a stale link): the page shows its first instead.
export const pastLastPage = (error, number) => error.status === 404 && number > 1;

// Wire the pager templates/partials/pager.html drew with `prefix` (ids <prefix>-pager, -previous, -next, -place) to
// `step(-1)` and `step(+1)`. show(result, number, size) writes the place with `say` (rowsPlace unless told) and hides
// the pager when the list fits one page.
export function listPager(prefix, step, say = rowsPlace) {
  const [navElement, previousButton, nextButton, placeElement] =
    ["pager", "previous", "next", "place"].map((part) => document.getElementById(`${prefix}-${part}`));
  previousButton.addEventListener("click", () => step(-1));
  nextButton.addEventListener("click", () => step(+1));
  return {
    show(result, number, size) {
      placeElement.textContent = say(result, number, size);
      previousButton.disabled = !result.previous;
      nextButton.disabled = !result.next;
      navElement.hidden = !result.previous && !result.next;
    },
    hide() {
      navElement.hidden = true;
    },
  };
}
