/* step(): one neuron for one step, shared by the neuron kernels (native.c) and the event conv's fused
   neuron (event_conv.c); max4(): a 2x2 window's max, shared by the running max pool (native.c) and the
   event conv's fused one. Needs the codes of snnc_native.h. */
#ifndef SNNC_NEURON_STEP_H
#define SNNC_NEURON_STEP_H
#include "snnc_native.h"

/* One neuron for one step, as snnc.core.dynamics defines it: charge h from the input xv,
   fire (the returned spike, 0 or 1), reset; *vp becomes the new potential. */
static inline __attribute__((always_inline)) float step(
    const int charge, const int reset, const int compare, const float xv, float* restrict vp,
    const float th, const float vr, const float tau)
{
  const float vv = *vp;
  float h;
  if (charge == SNNC_CHARGE_IF) h = vv + xv;
  else if (charge == SNNC_CHARGE_LIF) h = vv + (xv - (vv - vr)) / tau;
  else h = vv - (vv - vr) / tau + xv;  /* SNNC_CHARGE_LIF_NO_DECAY_INPUT */
  const float s = compare == SNNC_COMPARE_GT ? (float)(h > th) : (float)(h >= th);
  if (reset == SNNC_RESET_HARD) *vp = h * (1.0f - s) + vr * s;
  else if (reset == SNNC_RESET_SOFT) *vp = h - s * th;
  else *vp = h;  /* SNNC_RESET_NONE */
  return s;
}

/* The largest of a, b, c, d in this order, NaN winning (as torch's max_pool2d). */
static inline __attribute__((always_inline)) float max4(float a, float b, float c, float d)
{
  float m = a;
  if (b > m || b != b) m = b;
  if (c > m || c != c) m = c;
  if (d > m || d != d) m = d;
  return m;
}

#endif
