"""Synthesis plans: which faces ``fape gan synthesize`` adds, resolved to jobs on a dataset.

Plans
=====
A plan is a list of *targets*: ``{expression?, pose?, subject?, count}``. A key that is left out
means "any". Counts are measured on the **counted rows**: the manifest rows listed in ``--rows``
(all rows when omitted), so a train split is balanced against itself. A target asks for at least
``count`` images in its cell; its deficit (``count`` - real images in the cell - images already
planned for earlier targets that fall in the cell) is synthesized. Targets are resolved in order,
so overlapping targets never double-count.

The deficit of a target is spread over the keys it leaves open by *water-filling*: every
concrete (expression, pose, subject) cell the target covers gets images, the emptiest first,
until the deficit is used (ties broken by the seeded generator). E.g. ``{pose: half_left,
count: 500}`` adds half-left images to the expression x subject cells that have fewest.
A concrete cell is only used when it is feasible: a source exists for its (expression,
subject) and a real landmark set exists for its pose. The built-in plans:

* ``balance-pose`` (per expression): for every expression, every pose is topped up to the
  count of that expression's most common pose (ER-UP: the rare half-left pose is filled up
  inside each expression, leaving the expression distribution as it was).
* ``balance-expression``: every expression is topped up to the **median** expression count
  (ER-UE: the rare 20% of expressions reach the others' count; the median ignores a single
  very frequent class). ``balance-expression:max`` tops up to the maximum instead.
  ``balance-expression:contempt,fear,sadness`` (or ``balance-expression:max:contempt,fear``)
  tops up only the listed classes, to the median (max) over every class.
* ``balance-identity``: every subject is topped up to the median subject count
  (``balance-identity:max`` to the maximum). Rows without a subject are ignored.

(``balance-pose:median`` also exists.) A YAML plan lists explicit targets (see
``configs/plans/example.yaml``), and optionally how target landmarks are made
(``landmarks: auto | align | retarget``, below)::

    targets:
      - {pose: half_left, count: 500}
      - {expression: disgust, count: 300}
      - {expression: fear, pose: bird_view, subject: s03, count: 20}

Jobs
====
A plan resolves to jobs ``(source row, target pose, landmark row)``; expression, label and
subject are the source's (G changes pose, not expression or identity). Sources are rows allowed
by ``--rows`` that have landmarks (``landmarks_ok``): the same subject and expression in an
*other* pose when one exists, else the same subject and expression in any pose (then G only
redraws); cells whose subject is open take sources of that subject. Sources of a cell are used
in turn (a seeded permutation, repeated), so each is used about equally often.

The target pose comes from a real landmark set of an allowed image in that pose (same expression
preferred, any subject), aligned to the source face by :func:`align_landmarks` (centroid and
overall scale), so G sees a realistic mask at the source face's position and size
(landmark method ``align-centroid-scale``).

Real sets: expression transfer
==============================
On a set with subject ids and one pose (CK+48, JAFFE imported by ``fape data import``) a plan
*changes the expression*: a job of cell ``(b, pose, s)`` takes a source row of subject s in
another expression a and the landmarks ``retarget(source, D_a, D_b)`` of a donor pair, two rows
of one subject in a and b (``fape.gan.transfer``, ``fape.data.retarget``; landmark method
``retarget-similarity``; the mean change of ``donors: K`` pairs of different subjects, default
3, a YAML plan's key). The output row has expression b and the source's subject. Sources and
donors are allowed rows (``--rows``) only. Subjects that never showed b get it too (the cells
with fewest images first). ``landmarks: auto`` (the default) picks ``retarget`` when every
source row has a subject, there is one pose and some subject shows two expressions, else
``align``; ``retarget`` on a set without subject ids (FER2013) is an error. A built-in plan
takes the mode as a part of its name: ``balance-expression:max:retarget`` transfers expressions
on a multi-pose set too. There a job
keeps its cell's pose: source and donor pairs are rows in that pose, so F2ED's ER-UE can draw a
rare expression, shown by one training subject, on the faces of all the others.

Donors from another set: ``donor_rows`` (``--donor-rows``) are rows that only give donor pairs
(never counted, never sources), and source rows without a subject id are one cell, subject
``""``. On a merged FER2013 + CK+48 + JAFFE set (``fape data merge``), ``--rows`` = FER2013's
Training rows and ``--donor-rows`` = the CK+48 and JAFFE rows draw FER2013's rare expressions
on FER2013 training faces with the lab sets' expression changes. Donor rows make ``landmarks:
auto`` retarget.
"""
from __future__ import annotations

from fape.gan.plans.align import ALIGN, align_landmarks
from fape.gan.plans.report import plan_report, report_markdown
from fape.gan.plans.resolve import Job, ResolvedPlan, builtin_targets, landmark_method, resolve_plan, waterfill
from fape.gan.plans.spec import (BUILTIN_PLANS, DONORS, LANDMARK_MODES, PLAN_KEYS, Plan, Target, check_target_names,
                                 parse_plan)

__all__ = ["ALIGN", "BUILTIN_PLANS", "DONORS", "Job", "LANDMARK_MODES", "PLAN_KEYS", "Plan", "ResolvedPlan", "Target",
           "align_landmarks", "builtin_targets", "check_target_names", "landmark_method", "parse_plan", "plan_report",
           "report_markdown", "resolve_plan", "waterfill"]
