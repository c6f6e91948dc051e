-- Fragment (select-list expressions): a usage read's sums over its rows (n, input_tokens, output_tokens, cost_pico, errors), the same on the ledger and the raw path.
sum(n) AS s_observations,
sum(input_tokens) AS s_input_tokens,
sum(output_tokens) AS s_output_tokens,
sum(cost_pico) AS s_cost_pico,
sum(errors) AS s_errors
