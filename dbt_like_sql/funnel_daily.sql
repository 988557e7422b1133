-- Records per source through every layer, for one day: input = bronze + quarantined, bronze = silver + rejected
-- in silver, silver = in gold + rejected in gold.
with
bronze as (
    select source, 'sft' as regime, count(*) as n from {{ ref('bronze_sft') }} where date = {{ partition_date }} group by all
    union all select source, 'preference', count(*) from {{ ref('bronze_preference') }} where date = {{ partition_date }} group by all
    union all select source, 'rlvr', count(*) from {{ ref('bronze_rlvr') }} where date = {{ partition_date }} group by all
    union all select source, 'text', count(*) from {{ ref('bronze_text') }} where date = {{ partition_date }} group by all
),
quarantined as (
    select source, regime, count(*) as n from {{ ref('bronze_quarantine') }} where date = {{ partition_date }} group by all
),
silver as (
    select record_id, source, 'sft' as regime from {{ ref('silver_sft') }} where date = {{ partition_date }}
    union all select record_id, source, 'preference' from {{ ref('silver_preference') }} where date = {{ partition_date }}
    union all select record_id, source, 'rlvr' from {{ ref('silver_rlvr') }} where date = {{ partition_date }}
    union all select record_id, source, 'text' from {{ ref('silver_text') }} where date = {{ partition_date }}
),
silver_rejected as (
    select source, regime, count(*) as n from {{ ref('silver_rejections') }} where date = {{ partition_date }} group by all
),
in_gold as (
    select unnest(record_ids) as record_id from {{ ref('gold_sft') }} where date = {{ partition_date }}
    union all select unnest(record_ids) from {{ ref('gold_preference') }} where date = {{ partition_date }}
    union all select unnest(record_ids) from {{ ref('gold_rlvr') }} where date = {{ partition_date }}
    union all select unnest(record_ids) from {{ ref('gold_text') }} where date = {{ partition_date }}
),
gold as (
    select s.source, s.regime, count(*) as n from in_gold g join silver s using (record_id) group by all
),
gold_rejected as (
    select source, regime, count(*) as n from {{ ref('gold_rejections') }} where date = {{ partition_date }} group by all
),
keys as (
    select source, regime from bronze union select source, regime from quarantined
)
select
    {{ partition_date }} as date,
    k.regime,
    k.source,
    coalesce(b.n, 0) + coalesce(q.n, 0) as input_records,
    coalesce(b.n, 0) as bronze,
    coalesce(q.n, 0) as quarantined,
    (select count(*) from silver s where s.source = k.source and s.regime = k.regime) as silver,
    coalesce(sr.n, 0) as silver_rejected,
    coalesce(g.n, 0) as gold,
    coalesce(gr.n, 0) as gold_rejected
from keys k
left join bronze b using (source, regime)
left join quarantined q using (source, regime)
left join silver_rejected sr using (source, regime)
left join gold g using (source, regime)
left join gold_rejected gr using (source, regime)
order by k.regime, k.source
