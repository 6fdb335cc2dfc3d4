#!/usr/bin/env bash
# MG-GRPO with verl (>= 0.9, Ray, GPUs required: verl refuses to start without them) on the
# E-VAds RL parquet exactly as released. The reward is evads_rl/verl_reward.py:
#   compute_score(data_source, solution_str, ground_truth, extra_info) -> {"score", parts...}
# The RL rows' extra_info holds only id and video_path, so the reward looks the question,
# clues and metadata up by id in $EVADS_ANNOTATIONS (the same parquet works).
# The judge comes from EVADS_JUDGE_BASE_URL / EVADS_JUDGE_MODEL / EVADS_JUDGE_API_KEY.
# Videos: the rows say ../videos/<id>.mp4, relative to the annotations folder, so keep the
# authors' layout (annotations/ beside videos/) and run from inside annotations/ or rewrite
# the paths; `data.video_key=videos` makes verl read them.
#
# usage: EVADS_DATA=/data/E-VAds MODEL=/models/sft-output bash evads_rl/configs/verl_grpo.sh [extra overrides]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${EVADS_DATA:?set EVADS_DATA to the folder holding annotations/ and videos/}"
: "${MODEL:?set MODEL to the policy (the SFT output folder, or a Qwen2.5-VL/Qwen3-VL id)}"
TRAIN="${TRAIN:-$EVADS_DATA/annotations/EVAds_RL.parquet}"
export EVADS_ANNOTATIONS="${EVADS_ANNOTATIONS:-$TRAIN}"
export EVADS_REWARD_WEIGHTS="${EVADS_REWARD_WEIGHTS:-answer=0.8,trace=0.2,format=1}"
NGPUS="${NGPUS:-8}"

cd "$EVADS_DATA/annotations"
python3 -m verl.trainer.main_ppo \
    algorithm.adv_estimator=grpo \
    algorithm.use_kl_in_reward=False \
    data.train_files="$TRAIN" \
    data.val_files="$TRAIN" \
    data.prompt_key=prompt \
    data.video_key=videos \
    data.train_batch_size=32 \
    data.max_prompt_length=8192 \
    data.max_response_length=1024 \
    data.filter_overlong_prompts=True \
    actor_rollout_ref.model.path="$MODEL" \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.ppo_mini_batch_size=16 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1 \
    actor_rollout_ref.actor.use_kl_loss=False \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n=8 \
    actor_rollout_ref.rollout.temperature=1.0 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.5 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=1 \
    reward_model.reward_manager=batch \
    custom_reward_function.path="$REPO/evads_rl/verl_reward.py" \
    custom_reward_function.name=compute_score_batch \
    trainer.n_gpus_per_node="$NGPUS" \
    trainer.nnodes=1 \
    trainer.save_freq=50 \
    trainer.resume_mode=auto \
    trainer.project_name=evads \
    trainer.experiment_name=mg_grpo_verl \
    trainer.logger='[console]' \
    "$@"
# With the naive reward manager (one judge call per sample) use instead:
#   reward_model.reward_manager=naive custom_reward_function.name=compute_score
