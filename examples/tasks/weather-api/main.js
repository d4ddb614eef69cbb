(function (input) {
  const url = "https://api.weather.example/v1/current?city=" + encodeURIComponent(input.city);
  const response = fetch(url, { method: "GET", headers: { Accept: "application/json" } });
  if (!response.ok) {
    throw new Error("weather service answered " + response.status);
  }
  const body = response.body;
  return { city: input.city, temperature_c: body.current.temp_c, conditions: body.current.condition };
})
