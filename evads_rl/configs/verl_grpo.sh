#!/usr/bin/env bash
# MG-GRPO with verl (>= 0.9, Ray, GPUs required: verl refuses to start without them) on the
# E-VAds RL split. The reward is evads_rl/verl_reward.py:
#   compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos) -> [{"score", parts...}]
# The released parquet's `videos` is a plain relative string (../videos/698.mp4), but verl's
# RLHFDataset iterates `videos` as a list of {"video": path} dicts, so this script first
# converts each file with `python -m evads_rl verl-data` (absolute video paths; question,
# clues and metadata inline in extra_info, so the reward needs no lookup).
# The judge comes from EVADS_JUDGE_BASE_URL / EVADS_JUDGE_MODEL / EVADS_JUDGE_API_KEY; its
# name is printed once by the reward process (not in verl's numeric reward_extra_info).
#
# usage: EVADS_DATA=/data/E-VAds MODEL=/models/sft-output [VAL=/data/heldout.parquet] \
#            bash evads_rl/configs/verl_grpo.sh [extra verl overrides]
#   TRAIN: the RL annotation file (default $EVADS_DATA/annotations/EVAds_RL.parquet)
#   VAL:   a separate annotation file to validate on (any schema, e.g. a slice of the test
#          split); without it validation is off. It must share no video and no question id
#          with TRAIN (nor with SFT, the SFT file, when set): the conversion stops with exit 2
#          naming them, unless ALLOW_OVERLAP=1. VIDEO_DIR: default $EVADS_DATA/videos.
#   WORK:  where the converted parquet files go (default runs/rl/verl).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${EVADS_DATA:?set EVADS_DATA to the folder holding annotations/ and videos/}"
: "${MODEL:?set MODEL to the policy (the SFT output folder, or a Qwen2.5-VL/Qwen3-VL id)}"
TRAIN="${TRAIN:-$EVADS_DATA/annotations/EVAds_RL.parquet}"
VIDEO_DIR="${VIDEO_DIR:-$EVADS_DATA/videos}"
WORK="${WORK:-$REPO/runs/rl/verl}"
PYTHON="${PYTHON:-python3}"
export EVADS_REWARD_WEIGHTS="${EVADS_REWARD_WEIGHTS:-answer=0.8,trace=0.2,format=1}"
NGPUS="${NGPUS:-8}"

"$PYTHON" -m evads_rl verl-data "$TRAIN" --video-dir "$VIDEO_DIR" --out "$WORK/train.parquet"
if [ -n "${VAL:-}" ]; then
    "$PYTHON" -m evads_rl verl-data "$VAL" --video-dir "$VIDEO_DIR" --out "$WORK/val.parquet" \
        --disjoint-from "$TRAIN" ${SFT:+--disjoint-from "$SFT"} ${ALLOW_OVERLAP:+--allow-overlap}
    VAL_FILES="$WORK/val.parquet"
    VAL_FLAGS=(trainer.test_freq=50 trainer.val_before_train=True)
else
    echo "no VAL file given: validation off (verl still needs data.val_files; it gets the train file)"
    VAL_FILES="$WORK/train.parquet"
    VAL_FLAGS=(trainer.test_freq=-1 trainer.val_before_train=False)
fi

"$PYTHON" -m verl.trainer.main_ppo \
    algorithm.adv_estimator=grpo \
    algorithm.use_kl_in_reward=False \
    data.train_files="$WORK/train.parquet" \
    data.val_files="$VAL_FILES" \
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
    "${VAL_FLAGS[@]}" \
    "$@"
# With the naive reward manager (one judge call per sample) use instead:
#   reward_model.reward_manager=naive custom_reward_function.name=compute_score
