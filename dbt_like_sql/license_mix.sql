-- Per license: records in silver and tokens in gold, over every partition (what a release may be used for).
with silver as (
    select record_id, license, 'sft' as regime from {{ ref('silver_sft') }}
    union all select record_id, license, 'preference' from {{ ref('silver_preference') }}
    union all select record_id, license, 'rlvr' from {{ ref('silver_rlvr') }}
    union all select record_id, license, 'text' from {{ ref('silver_text') }}
),
tokens as (
    select unnest(record_ids) as record_id, unnest(seq_lens) as tokens from {{ ref('gold_sft') }}
    union all select unnest(record_ids), unnest(seq_lens) from {{ ref('gold_text') }}
    union all select record_id, len(chosen_input_ids) + len(rejected_input_ids) from {{ ref('gold_preference') }}
    union all select record_id, len(prompt_ids) from {{ ref('gold_rlvr') }}
)
select license, regime, count(*) as silver_records, coalesce(sum(t.tokens), 0) as gold_tokens
from silver s left join tokens t using (record_id)
group by all
order by license, regime
