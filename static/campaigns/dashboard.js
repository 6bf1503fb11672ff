// The dashboard's charts, drawn with plotly.js (served from the installed plotly package).
(function () {
  const data = JSON.parse(document.getElementById("dash-data").textContent);
  if (typeof Plotly === "undefined" || !document.getElementById("chart-funnel")) return;
  const layout = (title, extra) => Object.assign(
    {title: {text: title, font: {size: 14}}, margin: {l: 50, r: 10, t: 40, b: 60}, legend: {orientation: "h"}},
    extra || {});
  const config = {displaylogo: false, responsive: true};
  const days = data.daily.day || [];
  const line = (key, name) => ({x: days, y: data.daily[key] || [], name: name, type: "scatter", mode: "lines+markers"});

  Plotly.newPlot("chart-funnel", [
    line("sent", "sent"), line("delivered", "delivered"), line("opened", "opened"),
    line("clicked", "clicked"), line("converted", "converted"),
  ], layout("Funnel per day (first event of each recipient)", {yaxis: {rangemode: "tozero"}}), config);

  Plotly.newPlot("chart-money", [
    {x: days, y: data.daily.revenue || [], name: "revenue", type: "bar"},
    {x: days, y: data.daily.discount || [], name: "discount cost", type: "bar"},
    {x: days, y: data.daily.margin || [], name: "margin", type: "scatter", mode: "lines"},
  ], layout("Attributed revenue, discount and margin per day", {barmode: "group"}), config);

  const measured = data.batches.filter(b => b.profit !== null);
  Plotly.newPlot("chart-uplift", [{
    x: measured.map(b => b.label), y: measured.map(b => b.profit), type: "bar", name: "incremental profit",
    error_y: {type: "data", symmetric: false, array: measured.map(b => b.high - b.profit),
              arrayminus: measured.map(b => b.profit - b.low)},
  }], layout("Incremental profit per batch vs its holdout (95% interval)"), config);

  const points = data.global_holdout;
  Plotly.newPlot("chart-global", points.length ? [
    {x: points.map(p => p.batch), y: points.map(p => p.high), type: "scatter", mode: "lines", line: {width: 0},
     showlegend: false, hoverinfo: "skip"},
    {x: points.map(p => p.batch), y: points.map(p => p.low), type: "scatter", mode: "lines", line: {width: 0},
     fill: "tonexty", name: "95% interval"},
    {x: points.map(p => p.batch), y: points.map(p => p.estimate), type: "scatter", mode: "lines+markers",
     name: "cumulative incremental revenue"},
  ] : [], layout(points.length ? "Cumulative incremental revenue vs the global holdout"
                               : "Global holdout: off (GLOBAL_HOLDOUT_PERCENT = 0)"), config);
}());
