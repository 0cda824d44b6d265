// Pure: how the page names the engine's methods (the names themselves come from `capabilities()`).
// The splitting variants are LRP; every other method is a baseline of the paper's Table 1.

/** Label and one-line description of each baseline; `defaults` gives the engine's step and channel counts. */
export function baselineText(key, defaults = {}) {
  const texts = {
    gradient: ['gradient × input', 'the gradient of the class logit times the input'],
    ig: ['Integrated Gradients', `zero input → photo, ${defaults.igSteps ?? 50} Gauss–Legendre points (captum’s default): one forward and one backward pass each`],
    guided_backprop: ['Guided Backprop', 'the gradient with negative gradients stopped at every ReLU'],
    gradcam: ['Grad-CAM', 'the last stage’s channels weighted by their mean gradient, ReLU, upsampled (pytorch-grad-cam)'],
    scorecam: ['Score-CAM', `the ${defaults.scoreCamChannels ?? 32} channels of the last stage with the largest mean activation as masks: one forward pass each`],
    random: ['random', 'a seeded random ranking of the pixels'],
  };
  const [label, description] = texts[key] ?? [key, ''];
  return { label, description };
}

/** Whether method `key` is LRP (a splitting variant) among `variants`. */
export const isLrp = (key, variants) => key === 'lrp' || variants.includes(key);

/** The baselines among the engine's `methods`, in its order. */
export const baselines = (methods, variants) => methods.filter((m) => !isLrp(m, variants));

/** The options of a baseline's explanation from the LRP options `base` (rules do not apply; display cells do). */
export const baselineOptions = (key, base) => ({
  target: base.target,
  start: base.start,
  quantize: base.quantize,
  ...(base.cell > 1 ? { cell: base.cell } : {}),
  method: key,
});
