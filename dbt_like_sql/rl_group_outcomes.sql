-- The RL loop's day: prompt groups by what became of them, the staleness the trained ones were served at, and
-- their mean reward.
select
    outcome,
    count(*) as groups,
    sum(rollouts) as rollouts,
    max(staleness_served) as max_staleness_served,
    avg(staleness_served) as mean_staleness_served,
    avg(mean_reward) as mean_reward,
    min(oldest_version) as oldest_version,
    max(newest_version) as newest_version
from {{ ref('rollout_groups') }}
where date = {{ partition_date }}
group by outcome
order by outcome
