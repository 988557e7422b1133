-- Per stage (asset) and day (the day its runs started, UTC): runs, wall and CPU seconds, records read and the
-- throughput, what it cost, and the day's $ per million tokens: every stage's cost that day over the tokens the gold
-- runs of that day wrote. Costs are priced at the configured $ per core-hour (stage_runs' usd_per_core_hour), so the
-- whole history is priced alike. Runs recorded before their figures were measured count in `runs`, not in
-- `measured_runs`, and add nothing to the sums.
with runs as (
    select
        cast(timezone('UTC', started_at) as date) as date,
        asset,
        seconds,
        cpu_seconds,
        records_in,
        case when starts_with(asset, 'gold_') then tokens end as gold_tokens,
        cpu_seconds / 3600 * usd_per_core_hour as usd
    from {{ ref('stage_runs') }}
),
days as (
    select date, sum(usd) as day_usd, sum(gold_tokens) as day_gold_tokens from runs group by date
)
select
    date,
    asset as stage,
    count(*) as runs,
    count(cpu_seconds) as measured_runs,
    sum(seconds) as wall_seconds,
    sum(cpu_seconds) as cpu_seconds,
    sum(records_in)::bigint as records_in,
    sum(records_in) / nullif(sum(seconds), 0) as records_per_wall_second,
    sum(records_in) / nullif(sum(cpu_seconds), 0) as records_per_cpu_second,
    sum(usd) as usd,
    any_value(day_usd) as day_usd,
    any_value(day_gold_tokens)::bigint as day_gold_tokens,
    any_value(day_usd) / nullif(any_value(day_gold_tokens), 0) * 1e6 as day_usd_per_million_tokens
from runs
join days using (date)
group by date, asset
order by date, stage
