// Codec profiles (docs/protocol.md §2.1), port of lpstream/protocol/profiles.py. The numbers
// come from generated_profiles.js (`python -m lpstream.protocol.export_js`).

import { ProtocolError } from "./errors.js";
import { EXP0, EXP_STEP_MAX, EXP_STEP_MIN, EYE0, PROFILE_DEFINITIONS } from "./generated_profiles.js";
import { buildDeltaTables } from "./tables.js";
import { floorDiv } from "./wire.js";

/** Quantiser steps (base units) plus trained statistics of one kind of motion. Immutable. */
export class CodecProfile {
  constructor(definition) {
    this.profileId = definition.profileId;
    this.name = definition.name;
    this.statistics = definition.statistics;
    this.fixedSteps = definition.fixedSteps;
    this.expErrorBudget = definition.expErrorBudget;
    this.expFixedStep = definition.expFixedStep;
    this.expFineComponents = new Set(definition.expFineComponents);
    this.expFineStep = definition.expFineStep;
    this.deadZone = definition.deadZone;
    this.deltaTables = buildDeltaTables(this.statistics);
    Object.freeze(this);
  }

  expStep(scaleUnits) {
    if (this.expErrorBudget === null) return this.expFixedStep;
    return Math.min(
      EXP_STEP_MAX,
      Math.max(EXP_STEP_MIN, floorDiv(this.expErrorBudget * 100000, scaleUnits)),
    );
  }

  /** Quantiser step of field `index` given the already decoded scale. */
  step(index, scaleUnits) {
    if (EXP0 <= index && index < EYE0) {
      if (this.expFineComponents.has(index - EXP0)) return this.expFineStep;
      return this.expStep(scaleUnits);
    }
    return this.fixedSteps[index];
  }
}

const BUILT_IN = PROFILE_DEFINITIONS.map((definition) => new CodecProfile(definition));

/** LivePortrait implicit-keypoint motion (id 0). */
export const KEYPOINTS = BUILT_IN.find((p) => p.profileId === 0);
/** Landmark motion of the built-in backend (id 1); what the browser sends. */
export const LANDMARKS = BUILT_IN.find((p) => p.profileId === 1);
/** The built-in profiles by id. */
export const PROFILES = new Map(BUILT_IN.map((p) => [p.profileId, p]));

export function profileById(profileId, profiles = PROFILES) {
  const profile = profiles.get(profileId);
  if (profile === undefined) throw new ProtocolError(`unknown motion codec profile ${profileId}`);
  return profile;
}
