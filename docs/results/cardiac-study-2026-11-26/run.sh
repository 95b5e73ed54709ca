#!/bin/bash
# Feature-selection study for issue 4 (sized for a shared 2-core CPU). Rerun to resume.
cd /work/main
TABSIGHT_THREADS=1 exec node bin/tabsight.js study --cohort /work/study/cohort --out /work/study/out \
  --methods mrmr,jmi,cluster,random,crossmodal --k 10 --seeds 3 --epochs 6 --image-size 32 \
  --batch-size 128 --lr 1e-3 --tabular-hidden 512 --projection-hidden 512 --probe-seeds 3
