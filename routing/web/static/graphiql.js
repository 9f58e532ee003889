"use strict";
// GraphiQL on the service's own assets, with the explorer plugin. The query, variables and headers are kept
// in the address (shareable); headers (an API key) are kept only in this browser's storage.
(function () {
  const START = [
    "# Pricegraph's graph. Ctrl-Enter runs the query; the explorer (left) builds one by clicking.",
    "# Send an API key from the Headers tab: {\"Authorization\": \"Bearer cxm_...\"}",
    "{",
    "  model(slug: \"llama-3.3-70b\") {",
    "    displayName",
    "    offers { provider { slug } variant inputPer1m outputPer1m status }",
    "  }",
    "}",
    "",
  ].join("\n");
  const params = new URLSearchParams(location.search);
  function remember(name, value) {
    if (value) params.set(name, value); else params.delete(name);
    const search = params.toString();
    history.replaceState(null, "", location.pathname + (search ? "?" + search : ""));
  }
  const url = location.origin + location.pathname;
  const fetcher = GraphiQL.createFetcher({
    url: url,
    subscriptionUrl: url.replace(/^http/, "ws"),
  });
  const explorer = GraphiQLPluginExplorer.explorerPlugin();
  function App() {
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      plugins: [explorer],
      defaultQuery: START,
      query: params.get("query") || undefined,
      variables: params.get("variables") || undefined,
      onEditQuery: function (q) { remember("query", q); },
      onEditVariables: function (v) { remember("variables", v); },
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      inputValueDeprecation: true,
    });
  }
  ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(App));
})();
