-- Usage per bucket and requested group keys for one project and range: ONE primary-key range read of the ledger's bucket rows, in the coarsest view holding the keys (whole days from the day view, edge hours from the hour view); rows merge by sum.
WITH source AS
(
    SELECT hour, model, provider, type, name, environment,
           n, input_tokens, output_tokens, cost_pico, errors
    FROM rollup_ledger
    WHERE {{rollups/ledger_range}}
)
{{rollups/usage_rows}}
