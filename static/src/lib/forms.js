// Form helpers shared by the pages: fields that say their rule in words, slugs that follow a title, and filters kept
// in the page's address (so reload, back and a copied link show the same list).

// The browser's own message for a `pattern` is "Please match the requested format": say the rule instead, when the
// form is submitted and while the user fixes the text. The rule is also the field's title (a tooltip) and should be
// written in a visible hint beside it (aria-describedby).
export function explainRule(input, rule = input.title) {
  input.title = rule;
  const check = () => input.setCustomValidity(input.validity.patternMismatch ? rule : "");
  input.addEventListener("input", check);
  input.addEventListener("invalid", check);
  check();
}

// "Lab feed: ADT^A01 (Müller)" → "lab-feed-adt-a01-muller"
export function slugify(text, maxLength = 100) {
  return text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
    .replace(/[^a-z0-9]+/g, "-").replace(/^-+/, "").slice(0, maxLength).replace(/-+$/, "");
}

// The slug is the title, slugified as it is typed, until the user types in the slug field (emptying it resumes).
export function slugFollowsTitle(title, slug) {
  let followed = !slug.value;
  slug.addEventListener("input", () => (followed = !slug.value));
  title.addEventListener("input", () => {
    if (!followed) return;
    slug.value = slugify(title.value, Number(slug.maxLength) > 0 ? Number(slug.maxLength) : 100);
    slug.dispatchEvent(new Event("change")); // not "input": that would mean the user took the slug over
    slug.setCustomValidity(slug.validity.patternMismatch ? slug.title : "");
  });
}

// Filters in the address: the form's named fields ⇄ the query string. Empty fields are left out, so the address of
// an unfiltered list stays bare.
export function readFilters(form, search = window.location.search) {
  const params = new URLSearchParams(search);
  for (const element of form.elements) {
    if (element.name && params.has(element.name)) element.value = params.get(element.name);
  }
}

export function filterParams(form) {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) if (typeof value === "string" && value.trim()) params.set(key, value.trim());
  return params;
}

// Replace (not push) the history entry: typing a search is one visit of the list, and back leaves the list.
export function keepInAddress(params) {
  const query = params.toString();
  const address = `${window.location.pathname}${query ? `?${query}` : ""}${window.location.hash}`;
  if (address !== `${window.location.pathname}${window.location.search}${window.location.hash}`) {
    window.history.replaceState(window.history.state, "", address);
  }
}
