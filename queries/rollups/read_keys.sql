-- Fragment (select-list expressions): a read's bucket (hour, or UTC day) and its group keys, '' for keys not asked for.
if({day:Bool}, toStartOfDay(hour, 'UTC'), hour) AS bucket,
if({by_model:Bool}, model, '') AS g_model,
if({by_provider:Bool}, provider, '') AS g_provider,
if({by_type:Bool}, type, '') AS g_type,
if({by_name:Bool}, name, '') AS g_name,
if({by_environment:Bool}, environment, '') AS g_environment
