/* The neuron kernels and the pooling kernels of snnc.runtime.native.

   The neuron's semantic fields arrive as the codes of snnc.core.dynamics (Charge, ResetMode,
   FireCompare): snnc_native.h, generated from those enums at build time, names them and lists
   every combination (SNNC_NEURON_VARIANTS). Each exported snnc_* function's parameter list is
   read from this file to make its ctypes signature. Compiled with -ffp-contract=off: see
   snnc.runtime.native. */
#include <stdint.h>
#include "snnc_native.h"  /* generated: the dynamics codes and the exported prototypes */
#define BLOCK 512

#include "neuron_step.h"  /* step(): one neuron for one step */

static inline __attribute__((always_inline)) void body(
    const int charge, const int reset, const int compare,
    const float* restrict x, int64_t xs, float* restrict out, float* restrict v, float* restrict vseq,
    int64_t T, int64_t E, int64_t e0, int64_t e1,
    float pre, float post, float th, float vr, float tau)
{
  float vb[BLOCK];
  for (int64_t b = e0; b < e1; b += BLOCK) {
    const int64_t n = e1 - b < BLOCK ? e1 - b : BLOCK;
    for (int64_t e = 0; e < n; e++) vb[e] = v[b + e];
    for (int64_t t = 0; t < T; t++) {
      const float* restrict xt = x + t * xs + b;
      float* restrict ot = out + t * E + b;
      if (xs && t + 1 < T)  /* the next step's block is E floats away: fetch it while this one runs */
        for (int64_t e = 0; e < n; e += 16) __builtin_prefetch(xt + xs + e);
      for (int64_t e = 0; e < n; e++)
        ot[e] = step(charge, reset, compare, xt[e] * pre, &vb[e], th, vr, tau) * post;
      if (vseq) {
        float* restrict vt = vseq + t * E + b;
        for (int64_t e = 0; e < n; e++) vt[e] = vb[e];
      }
    }
    for (int64_t e = 0; e < n; e++) v[b + e] = vb[e];
  }
}

/* One call of body with constant codes for each (charge, reset, compare) in SNNC_NEURON_VARIANTS,
   so that every variant's inner loop vectorises without branches. Returns -1 for unknown codes. */
int snnc_neuron_f32(int charge, int reset, int compare, const float* x, int64_t xs, float* out, float* v,
                    float* vseq, int64_t T, int64_t E, int64_t e0, int64_t e1,
                    float pre, float post, float th, float vr, float tau)
{
#define VARIANT(C, R, G) if (charge == (C) && reset == (R) && compare == (G)) { \
    body(C, R, G, x, xs, out, v, vseq, T, E, e0, e1, pre, post, th, vr, tau); return 0; }
  SNNC_NEURON_VARIANTS(VARIANT)
#undef VARIANT
  return -1;
}

/* The signed IF neuron (snnc.core.dynamics.signed_if_step) over T steps of elements e0..e1 of E:
   x step t at x + t*xs (xs = 0: the same input every step), out [T, E], v and cnt [E] updated in
   place. A block of elements stays in registers/L1 over all T steps. Bit-identical to the torch
   definition: s*th is exact for s in {-1, 0, 1}. */
void snnc_signed_if_f32(const float* restrict x, int64_t xs, float* restrict out, float* restrict v,
                        float* restrict cnt, int64_t T, int64_t E, int64_t e0, int64_t e1, float th)
{
  for (int64_t b = e0; b < e1; b += BLOCK) {
    const int64_t n = e1 - b < BLOCK ? e1 - b : BLOCK;
    float vb[BLOCK], cb[BLOCK];
    for (int64_t e = 0; e < n; e++) { vb[e] = v[b + e]; cb[e] = cnt[b + e]; }
    for (int64_t t = 0; t < T; t++) {
      const float* restrict xt = x + t * xs + b;
      float* restrict ot = out + t * E + b;
      for (int64_t e = 0; e < n; e++) {
        const float h = vb[e] + xt[e];
        const float s = (float)(h >= th) - (float)((h < 0.0f) & (cb[e] > 0.0f));
        ot[e] = s;
        vb[e] = h - s * th;
        cb[e] += s;
      }
    }
    for (int64_t e = 0; e < n; e++) { v[b + e] = vb[e]; cnt[b + e] = cb[e]; }
  }
}

/* A neuron followed by 2x2/stride-2 pooling of its (post-scaled) spikes. The input is a
   sequence of row pairs of R floats each (R = W for NCHW planes, W*C for channels_last
   images; G = 1 or C floats per pixel); a tile of consecutive pairs (about TILE_TARGET
   floats) stays in L1 over all T steps, and only the pooled rows (R/2 floats per pair)
   are written. The pooling
   arithmetic is that of the pooling kernels below. */
#define TILE_MAX 8192
#define TILE_TARGET 1024

/* One 2x2 window a b / c d: its max (NaN wins, as in torch) or its mean (0 + a + b + c + d,
   times 0.25 == / 4 exactly: a power of two). */
static inline __attribute__((always_inline)) float pool4(const int pmax, float a, float b, float c, float d)
{
  if (pmax) {
    float r = a;
    r = (b > r || b != b) ? b : r;
    r = (c > r || c != c) ? c : r;
    return (d > r || d != d) ? d : r;
  }
  float sum = 0.0f;
  sum += a; sum += b; sum += c; sum += d;
  return sum * 0.25f;
}
static inline __attribute__((always_inline)) void body_pool(
    const int charge, const int reset, const int compare, const int pmax,
    const float* restrict x, int64_t xs, float* restrict out, float* restrict v,
    int64_t T, int64_t i0, int64_t i1, int64_t R, int64_t G, int64_t Eo,
    float pre, float post, float th, float vr, float tau)
{
  float vb[TILE_MAX], sb[TILE_MAX];
  const int64_t Ro = R / 2, Wo = R / (2 * G);
  const int64_t per = TILE_TARGET / (2 * R) > 1 ? TILE_TARGET / (2 * R) : 1;  /* row pairs per tile */
  for (int64_t i = i0; i < i1; i += per) {
    const int64_t np = i1 - i < per ? i1 - i : per;
    const int64_t n = np * 2 * R;
    float* restrict vt = v + i * 2 * R;
    for (int64_t e = 0; e < n; e++) vb[e] = vt[e];
    for (int64_t t = 0; t < T; t++) {
      const float* restrict xt = x + t * xs + i * 2 * R;
      if (xs && t + 1 < T)  /* the next step's tile is a page or more away: fetch it while this one runs */
        for (int64_t e = 0; e < n; e += 16) __builtin_prefetch(xt + xs + e);
      for (int64_t e = 0; e < n; e++)
        sb[e] = step(charge, reset, compare, xt[e] * pre, &vb[e], th, vr, tau) * post;
      for (int64_t q = 0; q < np; q++) {
        const float* restrict r0 = sb + q * 2 * R;
        const float* restrict r1 = r0 + R;
        float* restrict ot = out + t * Eo + (i + q) * Ro;
        if (G == 1) {  /* NCHW: a separate loop the compiler can vectorise */
          for (int64_t ow = 0; ow < Wo; ow++) {
            ot[ow] = pool4(pmax, r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]);
          }
          continue;
        }
        for (int64_t ow = 0; ow < Wo; ow++) {
          for (int64_t g = 0; g < G; g++) {
            ot[ow * G + g] = pool4(pmax, r0[2 * ow * G + g], r0[(2 * ow + 1) * G + g],
                                   r1[2 * ow * G + g], r1[(2 * ow + 1) * G + g]);
          }
        }
      }
    }
    for (int64_t e = 0; e < n; e++) vt[e] = vb[e];
  }
}

/* As snnc_neuron_f32, with pmax (1: max, 0: average pooling) constant too. Returns -1 for unknown
   codes, -2 for a row pair over TILE_MAX floats. */
int snnc_neuron_pool_f32(int charge, int reset, int compare, int pmax, const float* x, int64_t xs, float* out,
                         float* v, int64_t T, int64_t i0, int64_t i1, int64_t rb, int64_t gsize, int64_t Eo,
                         float pre, float post, float th, float vr, float tau)
{
  if (2 * rb > TILE_MAX) return -2;
#define PVARIANT(C, R, G) if (charge == (C) && reset == (R) && compare == (G)) { \
    if (pmax) body_pool(C, R, G, 1, x, xs, out, v, T, i0, i1, rb, gsize, Eo, pre, post, th, vr, tau); \
    else body_pool(C, R, G, 0, x, xs, out, v, T, i0, i1, rb, gsize, Eo, pre, post, th, vr, tau); \
    return 0; }
  SNNC_NEURON_VARIANTS(PVARIANT)
#undef PVARIANT
  return -1;
}

/* Pooling over [P, H, W] planes (NCHW), element for element as torch's CPU kernels:
   avg: sum = 0; sum += x over the window (row by row); out = sum / divisor
   max: the first maximum, NaN wins. */
static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

void snnc_avg_pool2d_f32(const float* restrict x, float* restrict out, int64_t p0, int64_t p1,
                         int64_t H, int64_t W, int64_t Ho, int64_t Wo, int64_t kh, int64_t kw,
                         int64_t sh, int64_t sw, int64_t ph, int64_t pw, int count_include_pad, int64_t divisor)
{
  if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0 && divisor == 0 && 2 * Ho <= H && 2 * Wo <= W) {
    for (int64_t p = p0; p < p1; p++) {
      const float* xp = x + p * H * W;
      float* op = out + p * Ho * Wo;
      for (int64_t oh = 0; oh < Ho; oh++) {
        const float* r0 = xp + 2 * oh * W;
        const float* r1 = r0 + W;
        for (int64_t ow = 0; ow < Wo; ow++) {
          float sum = 0.0f;
          sum += r0[2 * ow]; sum += r0[2 * ow + 1]; sum += r1[2 * ow]; sum += r1[2 * ow + 1];
          op[oh * Wo + ow] = sum * 0.25f;  /* == sum / 4 exactly: a power of two */
        }
      }
    }
    return;
  }
  for (int64_t p = p0; p < p1; p++) {
    const float* xp = x + p * H * W;
    float* op = out + p * Ho * Wo;
    for (int64_t oh = 0; oh < Ho; oh++) {
      for (int64_t ow = 0; ow < Wo; ow++) {
        int64_t ih0 = oh * sh - ph, iw0 = ow * sw - pw;
        int64_t ih1 = imin(ih0 + kh, H + ph), iw1 = imin(iw0 + kw, W + pw);
        const int64_t pool = (ih1 - ih0) * (iw1 - iw0);
        ih0 = imax(ih0, 0); iw0 = imax(iw0, 0); ih1 = imin(ih1, H); iw1 = imin(iw1, W);
        if (ih0 >= ih1 || iw0 >= iw1) { op[oh * Wo + ow] = 0.0f; continue; }
        const int64_t div = divisor ? divisor : (count_include_pad ? pool : (ih1 - ih0) * (iw1 - iw0));
        float sum = 0.0f;
        for (int64_t ih = ih0; ih < ih1; ih++)
          for (int64_t iw = iw0; iw < iw1; iw++) sum += xp[ih * W + iw];
        op[oh * Wo + ow] = sum / (float)div;
      }
    }
  }
}

void snnc_max_pool2d_f32(const float* restrict x, float* restrict out, int64_t p0, int64_t p1,
                         int64_t H, int64_t W, int64_t Ho, int64_t Wo, int64_t kh, int64_t kw,
                         int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw)
{
  if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0 && dh == 1 && dw == 1 && 2 * Ho <= H && 2 * Wo <= W) {
    for (int64_t p = p0; p < p1; p++) {
      const float* xp = x + p * H * W;
      float* op = out + p * Ho * Wo;
      for (int64_t oh = 0; oh < Ho; oh++) {
        const float* r0 = xp + 2 * oh * W;
        const float* r1 = r0 + W;
        for (int64_t ow = 0; ow < Wo; ow++) {
          const float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
          float m = a;  /* torch starts from -inf, which the first element replaces (or equals) */
          if (b > m || b != b) m = b;
          if (c > m || c != c) m = c;
          if (d > m || d != d) m = d;
          op[oh * Wo + ow] = m;
        }
      }
    }
    return;
  }
  for (int64_t p = p0; p < p1; p++) {
    const float* xp = x + p * H * W;
    float* op = out + p * Ho * Wo;
    for (int64_t oh = 0; oh < Ho; oh++) {
      int64_t ih0 = oh * sh - ph;
      const int64_t ih1 = imin(ih0 + (kh - 1) * dh + 1, H);
      while (ih0 < 0) ih0 += dh;
      for (int64_t ow = 0; ow < Wo; ow++) {
        int64_t iw0 = ow * sw - pw;
        const int64_t iw1 = imin(iw0 + (kw - 1) * dw + 1, W);
        while (iw0 < 0) iw0 += dw;
        float m = -__builtin_inff();
        for (int64_t ih = ih0; ih < ih1; ih += dh)
          for (int64_t iw = iw0; iw < iw1; iw += dw) {
            const float v = xp[ih * W + iw];
            if (v > m || v != v) m = v;
          }
        op[oh * Wo + ow] = m;
      }
    }
  }
}

/* The running 2x2/stride-2 max pool (RunningMaxPool2d) over c steps of x, for planes/images [p0, p1):
 *   acc += x[t];  cur = maxpool(acc);  y[t] = cur - prev;  prev = cur
 * with the same float32 operations, in the same order per element, as the torch loop in
 * runtime/kernels.py (so the results are bit-identical). acc [P, H, W] (or [N, H, W, C]) is updated in
 * place; prev [P, Ho, Wo] (or [N, Ho, Wo, C]) is scratch. H and W are even (Ho = H / 2, Wo = W / 2).
 * channels_last = 0: P = N * C planes of H x W; x step t starts at t * xs floats, y step t at t * ys.
 * channels_last = 1: P = N images of H x W x C (channels innermost), the range is over images. */
void snnc_running_max_pool2d_f32(int channels_last, const float* restrict x, int64_t xs, float* restrict y, int64_t ys,
                                 float* restrict acc, float* restrict prev, int64_t c, int64_t p0, int64_t p1,
                                 int64_t H, int64_t W, int64_t C)
{
  const int64_t Ho = H / 2, Wo = W / 2;
  const int64_t cl = channels_last ? C : 1;  /* floats per pixel */
  const int64_t plane = H * W * cl, oplane = Ho * Wo * cl, row = W * cl;
  for (int64_t p = p0; p < p1; p++) {
    float* a = acc + p * plane;
    float* pv = prev + p * oplane;
    for (int64_t oh = 0; oh < Ho; oh++)
      for (int64_t ow = 0; ow < Wo; ow++)
        for (int64_t k = 0; k < cl; k++) {
          const float* r0 = a + 2 * oh * row + 2 * ow * cl + k;
          pv[(oh * Wo + ow) * cl + k] = max4(r0[0], r0[cl], r0[row], r0[row + cl]);
        }
    for (int64_t t = 0; t < c; t++) {
      const float* xp = x + t * xs + p * plane;
      float* yp = y + t * ys + p * oplane;
      for (int64_t i = 0; i < plane; i++) a[i] = a[i] + xp[i];
      for (int64_t oh = 0; oh < Ho; oh++)
        for (int64_t ow = 0; ow < Wo; ow++)
          for (int64_t k = 0; k < cl; k++) {
            const float* r0 = a + 2 * oh * row + 2 * ow * cl + k;
            const float cur = max4(r0[0], r0[cl], r0[row], r0[row + cl]);
            const int64_t o = (oh * Wo + ow) * cl + k;
            yp[o] = cur - pv[o];
            pv[o] = cur;
          }
    }
  }
}
