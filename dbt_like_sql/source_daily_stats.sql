-- Per source and day, what silver kept: records, mean characters of the text a model reads, mean quality score,
-- the language mix, and how many records had PII redacted.
with kept as (
    select source, 'sft' as regime, lang, quality_score,
           list_sum(list_transform(messages, m -> length(m.content))) as chars
    from {{ ref('silver_sft') }} where date = {{ partition_date }}
    union all
    select source, 'preference', lang, quality_score,
           list_sum(list_transform(prompt, m -> length(m.content))) + list_sum(list_transform(chosen, m -> length(m.content)))
    from {{ ref('silver_preference') }} where date = {{ partition_date }}
    union all
    select source, 'rlvr', lang, quality_score, list_sum(list_transform(prompt, m -> length(m.content)))
    from {{ ref('silver_rlvr') }} where date = {{ partition_date }}
    union all
    select source, 'text', lang, quality_score, length(text) from {{ ref('silver_text') }} where date = {{ partition_date }}
),
langs as (
    select source, regime, string_agg(lang || ' ' || n, ', ' order by n desc, lang) as languages
    from (select source, regime, lang, count(*) as n from kept group by all)
    group by all
),
pii as (
    select source, regime, count(*) filter (where pii is not null) as records_with_pii
    from {{ ref('dedup_signatures') }} where date = {{ partition_date }} group by all
)
select
    {{ partition_date }} as date,
    regime,
    source,
    count(*) as records,
    round(avg(chars), 1) as mean_chars,
    round(avg(quality_score), 4) as mean_quality_score,
    any_value(languages) as languages,
    coalesce(any_value(records_with_pii), 0) as records_with_pii
from kept
left join langs using (source, regime)
left join pii using (source, regime)
group by all
order by regime, source
