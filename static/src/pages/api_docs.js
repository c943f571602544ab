// Swagger UI for the studio API (templates/api_docs.html). A page script, not an inline one: the studio's pages run
// under a Content-Security-Policy with script-src 'self' (mappings/guard.py). What drf-spectacular used to write
// into the page (schema URL, CSRF header, auth names) comes from the #swagger-ui element's data attributes.
"use strict";

(() => {
  const root = document.getElementById("swagger-ui");
  const schemaAuthNames = JSON.parse(root.dataset.authNames || "[]");
  const csrfHeader = root.dataset.csrfHeader;
  const csrfToken = root.dataset.csrfToken;
  let schemaAuthFailed = false;
  let ui;

  const isSchemaUrl = (url) => ui !== undefined && url === new URL(ui.getConfigs().url, document.baseURI).href;

  const responseInterceptor = (response) => {
    if (!response.ok && isSchemaUrl(response.url) && !schemaAuthFailed) {
      schemaAuthFailed = true; // retry once without credentials, then stop
      setTimeout(() => ui.specActions.download());
    }
    return response;
  };

  const injectAuthCredentials = (request) => {
    const state = ui === undefined ? undefined : ui.getState().get("auth").get("authorized");
    const authorized = state === undefined ? undefined : state.toJS();
    if (authorized === undefined) return;
    for (const name of schemaAuthNames) {
      const auth = authorized[name];
      if (auth === undefined || auth.schema === undefined) continue;
      if (auth.schema.type === "http" && auth.schema.scheme === "bearer") {
        request.headers.Authorization = `Bearer ${auth.value}`;
      } else if (auth.schema.type === "http" && auth.schema.scheme === "basic") {
        request.headers.Authorization = `Basic ${btoa(`${auth.value.username}:${auth.value.password}`)}`;
      } else if (auth.schema.type === "apiKey" && auth.schema.in === "header") {
        request.headers[auth.schema.name] = auth.value;
      } else {
        continue;
      }
      return;
    }
  };

  const requestInterceptor = (request) => {
    if (request.loadSpec && schemaAuthNames.length > 0 && !schemaAuthFailed) injectAuthCredentials(request);
    // Try it out acts as the signed-in user: writes carry the CSRF token the session API checks.
    if (!["GET", undefined].includes(request.method) && request.credentials === "same-origin") {
      request.headers[csrfHeader] = csrfToken;
    }
    return request;
  };

  ui = SwaggerUIBundle({
    url: root.dataset.schemaUrl,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor,
    responseInterceptor,
    deepLinking: true,
    validatorUrl: null, // or Swagger UI shows a badge from validator.swagger.io for any host but localhost
    // Operations open by tag and schemas show where they are used: laying out all of them took the page past 500 ms
    docExpansion: "none",
    defaultModelsExpandDepth: -1,
    onComplete: () => {
      document.body.dataset.ready = "true"; // the page is usable, as every studio page marks it
    },
  });
})();
