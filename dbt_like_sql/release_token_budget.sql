-- Tokens per release and table, from the releases' manifests.
select release, "table" as table_name, count(*) as partitions, sum(rows) as rows, sum(tokens) as tokens
from {{ ref('release') }}
group by all
order by release, table_name
