/* The event-driven conv2d for spike inputs of snnc.runtime.event_conv (its docstring explains the
   blocking). Each exported snnc_* function's parameter list is read from this file to make its
   ctypes signature. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "snnc_native.h"  /* generated: the exported prototypes (see snnc.runtime.native) */
#include "neuron_step.h"  /* step(): one neuron for one step */

#if defined(__AVX2__)
#include <immintrin.h>
/* ev_lut[m] = the positions of the set bits of m, in increasing order (a compress table). */
static uint16_t ev_lut[256][8] __attribute__((aligned(16)));
__attribute__((constructor)) static void ev_lut_init(void) {
  for (int m = 0; m < 256; m++) {
    int k = 0;
    for (int b = 0; b < 8; b++) if (m >> b & 1) ev_lut[m][k++] = (uint16_t)b;
  }
}
#endif

typedef float ev_v8 __attribute__((vector_size(32), aligned(4), may_alias));
#if defined(__AVX512F__)
#define EV_MAX_TILE 128 /* 8 zmm accumulators */
#else
#define EV_MAX_TILE 64 /* 8 ymm accumulators */
#endif
/* A kernel row's three taps serve runs of neighbouring pixels in one pass where their weights fit in L1
   (48 KiB: 64 input x 64 output channels; 3 * C * TW floats); for 128 x 128 (192 KiB, from L2) pairs of
   taps per pixel were 9% faster (A/B in one process, Intel Xeon). */
#define EV_ROW3_MAX (12 * 1024)
#if defined(__AVX512F__)
/* With AVX-512 a tile's row is added 16 lanes at a time: half the loads and adds per event. Each lane
   still sums its own column in the same order, so the result is bit-identical to the 8-lane loop. */
typedef float ev_v16 __attribute__((vector_size(64), aligned(4), may_alias));
#endif

/* The lists of one channel block, channels c0..c1 of the pixel at xp (channel stride sc), appended at
   e[k..]: returns the new k; *bad becomes 1 when an element is not one the kind allows. */
static inline __attribute__((always_inline)) int64_t ev_block_spikes(
    const float* restrict xp, int64_t sc, int64_t c0, int64_t c1, float amp, uint16_t* restrict e, int64_t k,
    int* bad_out)
{
  int bad = 0;
  if (sc == 1) {
    int64_t c = c0;
#if defined(__AVX512VBMI2__) && defined(__AVX512VL__) && defined(__AVX512BW__)
    {  /* 16 channels at a time: compare, then compress their indices in one instruction */
      const __m512 z16 = _mm512_setzero_ps(), a16 = _mm512_set1_ps(amp);
      const __m256i lanes = _mm256_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
      for (; c + 16 <= c1; c += 16) {
        const __m512 v = _mm512_loadu_ps(xp + c);
        const __mmask16 nz = _mm512_cmp_ps_mask(v, z16, _CMP_NEQ_UQ);
        const __mmask16 na = _mm512_cmp_ps_mask(v, a16, _CMP_NEQ_UQ);
        bad |= (nz & na) != 0;
        const __m256i idx = _mm256_maskz_compress_epi16(nz, _mm256_add_epi16(lanes, _mm256_set1_epi16((short)c)));
        _mm256_storeu_si256((__m256i*)(e + k), idx);  /* k <= c and c + 16 <= C: inside the pixel's room */
        k += __builtin_popcount(nz);
      }
    }
#endif
#if defined(__AVX2__)
    const __m256 zero = _mm256_setzero_ps(), va = _mm256_set1_ps(amp);
    for (; c + 8 <= c1; c += 8) {  /* branch free: 8 channels, then a compress by table */
      const __m256 v = _mm256_loadu_ps(xp + c);
      const int nz = _mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NEQ_UQ));
      const int na = _mm256_movemask_ps(_mm256_cmp_ps(v, va, _CMP_NEQ_UQ));
      bad |= (nz & na) != 0;
      const __m128i idx = _mm_add_epi16(_mm_load_si128((const __m128i*)ev_lut[nz]), _mm_set1_epi16((short)c));
      _mm_storeu_si128((__m128i*)(e + k), idx);  /* k <= c and c + 8 <= C: inside the pixel's room */
      k += __builtin_popcount(nz);
    }
#endif
    for (; c < c1; c++) {
      const float v = xp[c];
      e[k] = (uint16_t)c;
      k += (v != 0.0f);
      bad |= (v != 0.0f) & (v != amp);
    }
  } else {
    for (int64_t c = c0; c < c1; c++) {
      const float v = xp[c * sc];
      e[k] = (uint16_t)c;
      k += (v != 0.0f);
      bad |= (v != 0.0f) & (v != amp);
    }
  }
  *bad_out |= bad;
  return k;
}

/* Signed: indices i0..i1 of 0..2C-1, i < C for +amp at channel i, i >= C for -amp at channel i - C. */
static inline __attribute__((always_inline)) int64_t ev_block_signed(
    const float* restrict xp, int64_t sc, int64_t C, int64_t i0, int64_t i1, float amp, uint16_t* restrict e,
    int64_t k, int* bad_out)
{
  int bad = 0;
  for (int64_t i = i0; i < i1; i++) {
    const int neg = i >= C;
    const float v = xp[(neg ? i - C : i) * sc];
    e[k] = (uint16_t)i;
    k += neg ? v == -amp : v == amp;
    bad |= (v != 0.0f) & (v != amp) & (v != -amp);
  }
  *bad_out |= bad;
  return k;
}

/* Levels: channel c listed m times for an element m * unit (m = 0..L). */
static inline __attribute__((always_inline)) int64_t ev_block_levels(
    const float* restrict xp, int64_t sc, int64_t c0, int64_t c1, float unit, int64_t L, uint16_t* restrict e,
    int64_t k, int* bad_out)
{
  for (int64_t c = c0; c < c1; c++) {
    const float v = xp[c * sc];
    if (v == 0.0f) continue;
    const float f = v / unit;
    const int64_t m = f >= 0.5f && f < (float)L + 0.5f ? (int64_t)(f + 0.5f) : 0;
    if (m == 0 || (float)m * unit != v) { *bad_out = 1; continue; }
    for (int64_t j = 0; j < m; j++) e[k++] = (uint16_t)c;
  }
  return k;
}

enum { EV_SPIKES, EV_SIGNED, EV_LEVELS };

/* The listing shared by the three kinds: per input pixel q0..q1 its lists packed one after another from
   ev[q0 * room] on (room = the most a pixel can list), off[q] where pixel q's begin, and bnd split at
   channel blocks of CB of its `rows` indices. With qx >= 0, x holds pixels qx.. one after another (sw
   floats apart) instead. Returns -1 when an element is not one the kind allows. */
static inline __attribute__((always_inline)) int ev_list(
    const int kind, const float* restrict x, const int64_t qx, int64_t sn, int64_t sc, int64_t sh, int64_t sw, int64_t H, int64_t W,
    int64_t C, int64_t CB, float a, int64_t L, int64_t q0, int64_t q1, uint16_t* restrict ev,
    uint16_t* restrict bnd, int64_t* restrict off)
{
  const int64_t rows = kind == EV_SIGNED ? 2 * C : C, room = kind == EV_LEVELS ? C * L : rows;
  const int64_t NCB = (rows + CB - 1) / CB;
  int bad = 0;
  int64_t base = q0 * room;
  for (int64_t q = q0; q < q1; q++) {
    const int64_t n = q / (H * W), r = q % (H * W);
    const float* restrict xp = qx >= 0 ? x + (q - qx) * sw : x + n * sn + (r / W) * sh + (r % W) * sw;
    off[q] = base;
    uint16_t* restrict e = ev + base;
    uint16_t* restrict b = bnd + q * (NCB + 1);
    int64_t k = 0;
    for (int64_t cb = 0; cb < NCB; cb++) {
      b[cb] = (uint16_t)k;
      const int64_t i0 = cb * CB, i1 = (cb + 1) * CB < rows ? (cb + 1) * CB : rows;
      if (kind == EV_SPIKES) k = ev_block_spikes(xp, sc, i0, i1, a, e, k, &bad);
      else if (kind == EV_SIGNED) k = ev_block_signed(xp, sc, C, i0, i1, a, e, k, &bad);
      else k = ev_block_levels(xp, sc, i0, i1, a, L, e, k, &bad);
    }
    b[NCB] = (uint16_t)k;
    base += k;
  }
  return bad ? -1 : 0;
}

/* Lists the nonzero channels of input pixels q0..q1 (q = (n*H + y)*W + x), in increasing
   order: pixel q's list starts at ev[off[q]], right after pixel q-1's (the lists of q0..q1 are packed
   from ev[q0*C] on, so 64 pixels' lists share a few cache lines); bnd[q*(NCB+1) + b] = the number of
   them below channel b*CB. x has element strides sn, sc, sh, sw. Returns -1 when an element is
   neither 0 nor amp. */
int snnc_spike_events_f32(const float* restrict x, int64_t sn, int64_t sc, int64_t sh, int64_t sw,
                          int64_t H, int64_t W, int64_t C, int64_t CB, float amp,
                          int64_t q0, int64_t q1, uint16_t* restrict ev, uint16_t* restrict bnd,
                          int64_t* restrict off)
{
  return ev_list(EV_SPIKES, x, -1, sn, sc, sh, sw, H, W, C, CB, amp, 1, q0, q1, ev, bnd, off);
}

/* Signed spikes (a SignedIF's: each element 0, amp or -amp): lists index c for x[c] == amp and C + c for
   x[c] == -amp, in increasing order over 0..2C-1, so that a conv packed with rows [a W; -a W] (2C input
   channels) adds a W's row for a +1 and the exactly negated row for a -1; packing, bnd (over channel blocks
   of CB of the 2C indices) and off as above, from ev[q0*2C] on. Returns -1 when an element is none of the
   three. */
int snnc_signed_events_f32(const float* restrict x, int64_t sn, int64_t sc, int64_t sh, int64_t sw,
                           int64_t H, int64_t W, int64_t C, int64_t CB, float amp,
                           int64_t q0, int64_t q1, uint16_t* restrict ev, uint16_t* restrict bnd,
                           int64_t* restrict off)
{
  return ev_list(EV_SIGNED, x, -1, sn, sc, sh, sw, H, W, C, CB, amp, 1, q0, q1, ev, bnd, off);
}

/* Multi-level inputs (average-pooled spikes: each element is k * unit, k = 0..L): lists channel c of
   input pixels q0..q1 k times, in increasing order of c, packed as above from ev[q0*C*L] on (so the conv
   adds its weight row k times); bnd and off as above. Returns -1 when an element is not k * unit
   (k = 0..L) exactly. */
int snnc_level_events_f32(const float* restrict x, int64_t sn, int64_t sc, int64_t sh, int64_t sw,
                          int64_t H, int64_t W, int64_t C, int64_t CB, float unit, int64_t L,
                          int64_t q0, int64_t q1, uint16_t* restrict ev, uint16_t* restrict bnd,
                          int64_t* restrict off)
{
  return ev_list(EV_LEVELS, x, -1, sn, sc, sh, sw, H, W, C, CB, unit, L, q0, q1, ev, bnd, off);
}

/* A neuron fused after the conv (snnc_event_conv2d_neuron_f32): each output element y = acc + bias
   (+ res, the other operand of an Add, dense or listed) is a step of the neuron kernel of native.c, whose potential
   for output pixel p is v[(p % step_pixels) * Cout + channel] (channels_last [N, Cout, Ho, Wo]). */
typedef struct ev_neuron ev_neuron;
typedef void (*ev_neuron_row)(const float* restrict y, float* restrict o, float* restrict v, int64_t n,
                              const ev_neuron* nr);
struct ev_neuron {
  const float* res;
  const uint16_t *rev, *rbnd;  /* or the residual as events (its spike lists, each index worth ramp) */
  const int64_t* roff;
  int64_t rncb;
  float ramp;
  float* scratch;  /* where the spikes go when out is not wanted (NULL: into out) */
  float* v;
  int64_t step_pixels;
  ev_neuron_row row;  /* the neuron variant's step over n elements: o = post * spike, v updated */
  float pre, post, th, vr, tau;
  /* With lev and one column tile holding every output channel (in one channel block of the listing):
     each pixel's spikes are listed right after its neuron step, from L1 (lev, lbnd, loff as ev_list
     writes them: a group's lists packed from lev[g0 * Cout] on); *bad becomes 1 for a value neither 0
     nor post. */
  uint16_t *lev, *lbnd;
  int64_t* loff;
  int* bad;
  /* With pacc: a running 2x2/stride-2 max pool (RunningMaxPool2d) between the conv and the neuron; pacc
     holds its sums per conv output element (channels_last [N, Cout, Ho, Wo]), prev a group's window
     maxima before this step; v, out and the lists are of the pooled pixels (ev_pool_step). */
  float *pacc, *prev;
};

/* One ev_neuron_row per neuron variant: step() of native.c's kernels, inlined with constant codes. */
#define EV_ROW(C, R, G) \
  static void ev_row_##C##_##R##_##G(const float* restrict y, float* restrict o, float* restrict v, int64_t n, \
                                     const ev_neuron* nr) { \
    const float pre = nr->pre, post = nr->post, th = nr->th, vr = nr->vr, tau = nr->tau; \
    for (int64_t e = 0; e < n; e++) o[e] = step(C, R, G, y[e] * pre, &v[e], th, vr, tau) * post; \
  }
SNNC_NEURON_VARIANTS(EV_ROW)
#undef EV_ROW

/* a[c] += the residual's element col0 + c for c < ncols (<= 128), rebuilt from pixel q's list: ramp where
   listed, else 0 * ramp (the bits of the dense value the neuron wrote). a has room for whole vectors. */
static inline __attribute__((always_inline)) void ev_add_listed(float* restrict a, int64_t ncols, int64_t col0,
                                                                const ev_neuron* nr, int64_t q)
{
  const float ramp = nr->ramp, zero = 0.0f * ramp;
  const uint16_t* restrict re = nr->rev + nr->roff[q];
  const int64_t nk = nr->rbnd[q * (nr->rncb + 1) + nr->rncb];
#if defined(__AVX2__)
  uint64_t b0 = 0, b1 = 0;  /* bit c of b0:b1: column col0 + c is listed (ncols <= 128) */
  for (int64_t k = 0; k < nk; k++) {
    const int64_t c = (int64_t)re[k] - col0;
    const uint64_t bit = (uint64_t)c < (uint64_t)ncols ? 1ull << (c & 63) : 0;
    b0 |= c < 64 ? bit : 0;
    b1 |= c < 64 ? 0 : bit;
  }
  const uint64_t bits[2] = {b0, b1};
  int64_t c = 0;
#if defined(__AVX512F__)
  const __m512 z16 = _mm512_set1_ps(zero), r16 = _mm512_set1_ps(ramp);
  for (; c + 16 <= ncols; c += 16) {
    const __mmask16 m = (__mmask16)(bits[c >> 6] >> (c & 63));
    _mm512_storeu_ps(a + c, _mm512_add_ps(_mm512_loadu_ps(a + c), _mm512_mask_blend_ps(m, z16, r16)));
  }
#endif
  const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256 z8 = _mm256_set1_ps(zero), r8 = _mm256_set1_ps(ramp);
  for (; c + 8 <= ncols; c += 8) {
    const __m256i m = _mm256_set1_epi32((int)(bits[c >> 6] >> (c & 63)) & 255);
    const __m256 on = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(m, sel), sel));
    _mm256_storeu_ps(a + c, _mm256_add_ps(_mm256_loadu_ps(a + c), _mm256_blendv_ps(z8, r8, on)));
  }
  for (; c < ncols; c++) a[c] = a[c] + ((bits[c >> 6] >> (c & 63) & 1) ? ramp : zero);
#else
  float rr[EV_MAX_TILE];
  for (int64_t c = 0; c < ncols; c++) rr[c] = zero;
  for (int64_t k = 0; k < nk; k++) {
    const int64_t c = (int64_t)re[k] - col0;
    if ((uint64_t)c < (uint64_t)ncols) rr[c] = ramp;
  }
  for (int64_t c = 0; c < ncols; c++) a[c] = a[c] + rr[c];
#endif
}

#if defined(__AVX512F__)
/* Input pixel j (0..R+1) of a run of R neighbouring pixels' kernel row: each of its events adds tap
   j - p's row (w + (j - p) * C * TW) to pixel p, for the pixels p it lies under. */
static inline __attribute__((always_inline)) void ev_run_input(
    const int TW, const int R, const int j, const uint16_t* restrict e, int64_t n, const float* restrict w,
    int64_t C, ev_v16 (*restrict acc)[8])
{
  const int plo = j - 2 > 0 ? j - 2 : 0, phi = j < R - 1 ? j : R - 1;
  for (int64_t k = 0; k < n; k++) {
    const float* restrict r = w + (int64_t)e[k] * TW;
    for (int p = plo; p <= phi; p++) {
      const float* restrict t = r + (int64_t)(j - p) * C * TW;
      for (int v = 0; v < TW / 16; v++) acc[p][v] += *(const ev_v16*)(t + 16 * v);
    }
  }
}

/* A run of R pixels (buf rows a, a + TW, ...) whose kernel row starts at input pixel q. */
static inline __attribute__((always_inline)) void ev_run(
    const int TW, const int R, const uint16_t* restrict ev, const uint16_t* restrict bnd,
    const int64_t* restrict off, int64_t q, const float* restrict w, int64_t C, float* restrict a)
{
  ev_v16 acc[4][8];
  for (int p = 0; p < R; p++)
    for (int v = 0; v < TW / 16; v++) acc[p][v] = *(const ev_v16*)(a + p * TW + 16 * v);
#define EV_RUN_INPUT(J) if ((J) < R + 2) ev_run_input(TW, R, (J), ev + off[q + (J)] + bnd[(q + (J)) * 2], \
    bnd[(q + (J)) * 2 + 1] - bnd[(q + (J)) * 2], w, C, acc);
  EV_RUN_INPUT(0) EV_RUN_INPUT(1) EV_RUN_INPUT(2) EV_RUN_INPUT(3) EV_RUN_INPUT(4) EV_RUN_INPUT(5)
#undef EV_RUN_INPUT
  for (int p = 0; p < R; p++)
    for (int v = 0; v < TW / 16; v++) *(ev_v16*)(a + p * TW + 16 * v) = acc[p][v];
}
#endif

/* The fused neuron's output row y (ncols floats) at output pixel q (of Cout channels, dense): o = post * spike into
   out (or only into a row in L1 when listing without a stored output); with lev, listed right away (one tile). */
static inline __attribute__((always_inline)) void ev_fire(const float* restrict y, float* restrict o,
                                                          float* restrict vrow, int64_t ncols, int64_t q,
                                                          int64_t* restrict lbase, const ev_neuron* nr)
{
  if (!nr->lev) {
    nr->row(y, o, vrow, ncols, nr);
    return;
  }
  float row[EV_MAX_TILE] __attribute__((aligned(64)));
  float* restrict so = o ? o : row;
  nr->row(y, so, vrow, ncols, nr);
  nr->loff[q] = *lbase;
  const int64_t k = ev_block_spikes(so, 1, 0, ncols, nr->post, nr->lev + *lbase, 0, nr->bad);
  nr->lbnd[2 * q] = 0;
  nr->lbnd[2 * q + 1] = (uint16_t)k;
  *lbase += k;
}

/* The running sums of the top-left pixel of the 2x2 window of pooled pixel jp (of one step; channel 0). */
static inline __attribute__((always_inline)) float* ev_window(float* pacc, int64_t jp, int64_t Ho, int64_t Wo,
                                                               int64_t Cout)
{
  const int64_t Hp = Ho / 2, Wp = Wo / 2, n = jp / (Hp * Wp), yp = jp % (Hp * Wp) / Wp, xp = jp % Wp;
  return pacc + ((n * Ho + 2 * yp) * Wo + 2 * xp) * Cout;
}

/* The conv's outputs of this tile for pixels g0..g0+np (pairs of whole rows of one step; buf, before the bias)
   with the running max pool of nr: A = A + y per output element (y = acc + bias), then per 2x2 window
   cur = max4(A of its 4 pixels), d = cur - prev, prev = cur (the same float32 operations as
   snnc_running_max_pool2d_f32), and d is the neuron's input at the pooled pixel. */
static inline __attribute__((always_inline)) void ev_pool_step(
    const int TW, float* restrict buf, int64_t np, int64_t g0, const float* restrict bias, int64_t col0,
    int64_t ncols, int64_t Cout, int64_t Ho, int64_t Wo, float* restrict out, const ev_neuron* nr)
{
  const int64_t sp = nr->step_pixels, j0 = g0 % sp, t = g0 / sp;
  for (int64_t i = 0; i < np; i++) {
    float* restrict a = buf + i * TW;
    float* restrict r = nr->pacc + (j0 + i) * Cout + col0;
    if (bias) for (int64_t c = 0; c < ncols; c++) a[c] = a[c] + bias[col0 + c];
    for (int64_t c = 0; c < ncols; c++) r[c] = r[c] + a[c];
  }
  const int64_t jp0 = j0 / 4;  /* the group starts a pair of rows: its first window's pooled pixel */
  int64_t lbase = (t * (sp / 4) + jp0) * ncols;  /* with nr->lev: where the next pooled pixel's list goes */
  for (int64_t w = 0; w < np / 4; w++) {
    const int64_t jp = jp0 + w;
    const float* restrict r00 = ev_window(nr->pacc, jp, Ho, Wo, Cout) + col0, * restrict r10 = r00 + Wo * Cout;
    float* restrict pv = nr->prev + w * Cout + col0;
    float d[EV_MAX_TILE] __attribute__((aligned(64)));
    for (int64_t c = 0; c < ncols; c++) {
      const float cur = max4(r00[c], r00[Cout + c], r10[c], r10[Cout + c]);
      d[c] = cur - pv[c];
      pv[c] = cur;
    }
    const int64_t q = t * (sp / 4) + jp;
    float* restrict o = nr->scratch ? nr->scratch + w * Cout + col0 : out ? out + q * Cout + col0 : NULL;
    ev_fire(d, o, nr->v + jp * Cout + col0, ncols, q, &lbase, nr);
  }
}

/* One column tile of TW floats (TW = 8..EV_MAX_TILE, a multiple of 8) for output pixels p0..p1; pixel q's events
   start at ev[off[q]]. */
static inline __attribute__((always_inline)) void ev_tile(
    const int TW, const uint16_t* restrict ev, const uint16_t* restrict bnd, int64_t C, int64_t CB,
    int64_t H, int64_t W, const float* restrict wt, const float* restrict bias, int64_t col0, int64_t ncols,
    const int64_t* restrict geo, float* restrict out, const int64_t* restrict ostr, int64_t Ho, int64_t Wo,
    int64_t p0, int64_t p1, int64_t P, float* restrict buf, int64_t* restrict pin, const int64_t* restrict off,
    const ev_neuron* nr)
{
  const int64_t kh = geo[0], kw = geo[1], sh = geo[2], sw = geo[3], ph = geo[4], pw = geo[5], dh = geo[6], dw = geo[7];
  const int64_t NCB = (C + CB - 1) / CB;
  const int NV = TW / 8;
  int64_t* restrict pn = pin;
  int64_t* restrict py = pin + P;
  int64_t* restrict px = pin + 2 * P;
  int64_t* restrict qb = pin + 3 * P;  /* an interior pixel's input pixel at tap (0, 0); -1 at a border */
  int64_t* restrict oo = pin + 4 * P;  /* the pixel's first output element (at column 0) */
  for (int64_t g0 = p0; g0 < p1; g0 += P) {
    const int64_t np = p1 - g0 < P ? p1 - g0 : P;
    int64_t n = g0 / (Ho * Wo), yo = g0 % (Ho * Wo) / Wo, xo = g0 % Wo;  /* then counted, not divided */
    for (int64_t i = 0; i < np; i++) {
      pn[i] = n;
      py[i] = yo * sh - ph;
      px[i] = xo * sw - pw;
      oo[i] = n * ostr[0] + yo * ostr[2] + xo * ostr[3];
      const int inside = py[i] >= 0 && py[i] + (kh - 1) * dh < H && px[i] >= 0 && px[i] + (kw - 1) * dw < W;
      qb[i] = inside ? (n * H + py[i]) * W + px[i] : -1;
      if (++xo == Wo) {
        xo = 0;
        if (++yo == Ho) { yo = 0; n++; }
      }
    }
    memset(buf, 0, (size_t)(np * TW) * sizeof(float));
#if defined(__AVX512F__)
    if (TW >= 16 && NCB == 1 && kw == 3 && sw == 1 && dw == 1 && 3 * C * TW <= EV_ROW3_MAX) {
      /* Runs of R = 4 (or 2) neighbouring interior pixels of a row share their kernel row's inputs:
         the R + 2 input pixels under taps (ky, 0..2) of the run are walked once each, and every event
         adds the row of each tap it lies under to that tap's pixel (ev_run). Each pixel still receives
         tap 0's rows, then tap 1's, then tap 2's (the documented order). Other pixels go alone, tap
         after tap. */
      for (int64_t ky = 0; ky < kh; ky++) {
        const float* restrict w0 = wt + ky * 3 * C * TW;  /* tap (ky, kx): w0 + kx * C * TW */
        const int64_t toff = ky * dh * W;
        for (int64_t i = 0; i < np;) {
          if (TW <= 64 && i + 3 < np && qb[i] >= 0 && qb[i + 1] == qb[i] + 1 && qb[i + 2] == qb[i] + 2 &&
              qb[i + 3] == qb[i] + 3) {  /* one row, interior (a border pixel between has qb -1) */
            ev_run(TW, 4, ev, bnd, off, qb[i] + toff, w0, C, buf + i * TW);
            i += 4;
            continue;
          }
          if (i + 1 < np && qb[i] >= 0 && qb[i + 1] == qb[i] + 1) {
            ev_run(TW, 2, ev, bnd, off, qb[i] + toff, w0, C, buf + i * TW);
            i += 2;
            continue;
          }
          float* restrict a = buf + i * TW;
          ev_v16 x[8];
          for (int v = 0; v < TW / 16; v++) x[v] = *(const ev_v16*)(a + 16 * v);
          for (int64_t kx = 0; kx < 3; kx++) {
            int64_t q = qb[i] + toff + kx;
            if (qb[i] < 0) {  /* a border pixel: this tap may fall outside the input */
              const int64_t iy = py[i] + ky * dh, ix = px[i] + kx;
              if ((uint64_t)iy >= (uint64_t)H || (uint64_t)ix >= (uint64_t)W) continue;
              q = (pn[i] * H + iy) * W + ix;
            }
            const float* restrict wk = w0 + kx * C * TW;
            const uint16_t* restrict e = ev + off[q] + bnd[q * 2];
            for (int64_t k = 0, n = bnd[q * 2 + 1] - bnd[q * 2]; k < n; k++) {
              const float* restrict r = wk + (int64_t)e[k] * TW;
              for (int v = 0; v < TW / 16; v++) x[v] += *(const ev_v16*)(r + 16 * v);
            }
          }
          for (int v = 0; v < TW / 16; v++) *(ev_v16*)(a + 16 * v) = x[v];
          i++;
        }
      }
    } else
#endif
    for (int64_t ky = 0; ky < kh; ky++)
      for (int64_t kx = 0; kx < kw; kx++) {
#if defined(__AVX512F__)
        if (TW >= 16 && NCB == 1 && kx + 1 < kw) {
          /* taps (ky, kx) and (ky, kx + 1) in one pass: one load and store of a pixel's partial sums for
             both, the first tap's rows added before the second's (the documented order, one channel block) */
          const float* restrict wa = wt + (ky * kw + kx) * C * TW;
          const float* restrict wb = wa + C * TW;
          const int64_t toff = ky * dh * W + kx * dw;
          for (int64_t i = 0; i < np; i++) {
            int64_t qa = qb[i] + toff, qc = qa + dw;
            int va = 1, vc = 1;
            if (qb[i] < 0) {
              const int64_t iy = py[i] + ky * dh, ix = px[i] + kx * dw;
              const int oky = (uint64_t)iy < (uint64_t)H;
              va = oky && (uint64_t)ix < (uint64_t)W;
              vc = oky && (uint64_t)(ix + dw) < (uint64_t)W;
              qa = (pn[i] * H + iy) * W + ix;
              qc = qa + dw;
            }
            const int64_t na = va ? bnd[qa * 2 + 1] - bnd[qa * 2] : 0, nc = vc ? bnd[qc * 2 + 1] - bnd[qc * 2] : 0;
            if (na + nc == 0) continue;
            const uint16_t* restrict ea = va ? ev + off[qa] + bnd[qa * 2] : ev;
            const uint16_t* restrict ec = vc ? ev + off[qc] + bnd[qc * 2] : ev;
            float* restrict a = buf + i * TW;
            ev_v16 acc[8];
            for (int v = 0; v < TW / 16; v++) acc[v] = *(const ev_v16*)(a + 16 * v);
            for (int64_t k = 0; k < na; k++) {
              const float* restrict row = wa + (int64_t)ea[k] * TW;
              for (int v = 0; v < TW / 16; v++) acc[v] += *(const ev_v16*)(row + 16 * v);
            }
            for (int64_t k = 0; k < nc; k++) {
              const float* restrict row = wb + (int64_t)ec[k] * TW;
              for (int v = 0; v < TW / 16; v++) acc[v] += *(const ev_v16*)(row + 16 * v);
            }
            for (int v = 0; v < TW / 16; v++) *(ev_v16*)(a + 16 * v) = acc[v];
          }
          kx++;
          continue;
        }
#endif
        const float* restrict wtap = wt + (ky * kw + kx) * C * TW;
        const int64_t toff = ky * dh * W + kx * dw;
        for (int64_t cb = 0; cb < NCB; cb++) {
          for (int64_t i = 0; i < np; i++) {
            int64_t q = qb[i] + toff;
            if (qb[i] < 0) {  /* a border pixel: this tap may fall outside the input */
              const int64_t iy = py[i] + ky * dh, ix = px[i] + kx * dw;
              if ((uint64_t)iy >= (uint64_t)H || (uint64_t)ix >= (uint64_t)W) continue;
              q = (pn[i] * H + iy) * W + ix;
            }
            const uint16_t* restrict bq = bnd + q * (NCB + 1);
            const int64_t k0 = bq[cb], k1 = bq[cb + 1];
            if (k0 == k1) continue;
            const uint16_t* restrict e = ev + off[q];
            float* restrict a = buf + i * TW;
#if defined(__AVX512F__)
            if (TW >= 16) {
              ev_v16 acc[8];
              for (int v = 0; v < TW / 16; v++) acc[v] = *(const ev_v16*)(a + 16 * v);
              for (int64_t k = k0; k < k1; k++) {
                const float* restrict row = wtap + (int64_t)e[k] * TW;
                for (int v = 0; v < TW / 16; v++) acc[v] += *(const ev_v16*)(row + 16 * v);
              }
              for (int v = 0; v < TW / 16; v++) *(ev_v16*)(a + 16 * v) = acc[v];
              continue;
            }
#endif
            ev_v8 acc[8];
            for (int v = 0; v < NV; v++) acc[v] = *(const ev_v8*)(a + 8 * v);
            for (int64_t k = k0; k < k1; k++) {
              const float* restrict row = wtap + (int64_t)e[k] * TW;
              for (int v = 0; v < NV; v++) acc[v] += *(const ev_v8*)(row + 8 * v);
            }
            for (int v = 0; v < NV; v++) *(ev_v8*)(a + 8 * v) = acc[v];
          }
        }
      }
    if (nr && nr->pacc) {
      ev_pool_step(TW, buf, np, g0, bias, col0, ncols, ostr[3], Ho, Wo, out, nr);
      continue;
    }
    int64_t vp = nr ? g0 % nr->step_pixels : 0;  /* the pixel's row of potentials (a group is in one step) */
    int64_t lbase = g0 * ncols;  /* with nr->lev: where the next pixel's list goes (ncols = Cout then) */
    for (int64_t i = 0; i < np; i++) {
      float* restrict a = buf + i * TW;
      const int64_t oc = ostr[1];
      if (nr) {  /* channels_last (oc == 1, checked by the caller): y into a, then the neuron's step */
        const int64_t at = oo[i] + col0;
        if (bias) for (int64_t c = 0; c < ncols; c++) a[c] = a[c] + bias[col0 + c];
        if (nr->res) for (int64_t c = 0; c < ncols; c++) a[c] = a[c] + nr->res[at + c];
        if (nr->rev) ev_add_listed(a, ncols, col0, nr, g0 + i);
        float* restrict o = nr->scratch ? nr->scratch + i * ostr[3] + col0 : out ? out + at : NULL;
        ev_fire(a, o, nr->v + (vp++) * ostr[3] + col0, ncols, g0 + i, &lbase, nr);
        continue;
      }
      float* restrict o = out + oo[i] + col0 * oc;
      if (oc == 1 && ncols == TW) {  /* channels_last, a whole tile: contiguous, vectorised */
        if (bias) {
          const float* restrict bb = bias + col0;
          for (int64_t c = 0; c < TW; c++) o[c] = a[c] + bb[c];
        } else {
          for (int64_t c = 0; c < TW; c++) o[c] = a[c];
        }
      } else if (bias) {
        for (int64_t c = 0; c < ncols; c++) o[c * oc] = a[c] + bias[col0 + c];
      } else {
        for (int64_t c = 0; c < ncols; c++) o[c * oc] = a[c];
      }
    }
  }
}

/* The widest column tile the kernel takes, at most `requested` floats: 128 with AVX-512, else 64. */
int snnc_event_max_tile(int64_t requested)
{
  return (int)(requested < EV_MAX_TILE ? requested : EV_MAX_TILE);
}

/* The smallest of 8, 16, 32, 64 (, 128) that holds rem columns, at most twmax. */
static int64_t ev_tile_width(int64_t rem, int64_t twmax) {
  int64_t tw = 8;
  while (tw < rem && tw < twmax) tw *= 2;
  return tw;
}

/* conv2d of the listed events with packed weights wp (per column tile: [kh*kw*C, TW] rows),
   for output pixels p0..p1 of [N, Cout, Ho, Wo] (element strides ostr = n, c, h, w).
   geo = kh, kw, stride h/w, padding h/w, dilation h/w; off = where each input pixel's events start in ev
   (from the listing). Returns -1 when out of memory. */
/* All column tiles of output pixels p0..p1 (buf, pin: scratch of P pixels). */
static void ev_tiles(const uint16_t* ev, const uint16_t* bnd, int64_t C, int64_t CB, int64_t H, int64_t W,
                     const float* wp, const float* bias, int64_t Cout, const int64_t* geo,
                     float* out, const int64_t* ostr, int64_t Ho, int64_t Wo, int64_t p0, int64_t p1, int64_t P,
                     int64_t twmax, const int64_t* off, float* buf, int64_t* pin, const ev_neuron* nr)
{
  const int64_t K = geo[0] * geo[1] * C;
  const float* wt = wp;
  for (int64_t col = 0; col < Cout;) {
    const int64_t tw = ev_tile_width(Cout - col, twmax);
    const int64_t nc = Cout - col < tw ? Cout - col : tw;
    switch (tw) {
#if EV_MAX_TILE >= 128
      case 128: ev_tile(128, ev, bnd, C, CB, H, W, wt, bias, col, nc, geo, out, ostr, Ho, Wo, p0, p1, P, buf, pin, off, nr); break;
#endif
      case 64: ev_tile(64, ev, bnd, C, CB, H, W, wt, bias, col, nc, geo, out, ostr, Ho, Wo, p0, p1, P, buf, pin, off, nr); break;
      case 32: ev_tile(32, ev, bnd, C, CB, H, W, wt, bias, col, nc, geo, out, ostr, Ho, Wo, p0, p1, P, buf, pin, off, nr); break;
      case 16: ev_tile(16, ev, bnd, C, CB, H, W, wt, bias, col, nc, geo, out, ostr, Ho, Wo, p0, p1, P, buf, pin, off, nr); break;
      default: ev_tile(8, ev, bnd, C, CB, H, W, wt, bias, col, nc, geo, out, ostr, Ho, Wo, p0, p1, P, buf, pin, off, nr); break;
    }
    wt += K * tw;
    col += tw;
  }
}

int snnc_event_conv2d_f32(const uint16_t* ev, const uint16_t* bnd, int64_t C, int64_t CB, int64_t H, int64_t W,
                          const float* wp, const float* bias, int64_t Cout, const int64_t* geo,
                          float* out, const int64_t* ostr, int64_t Ho, int64_t Wo, int64_t p0, int64_t p1, int64_t P,
                          int64_t twmax, const int64_t* off)
{
  if (twmax > EV_MAX_TILE) twmax = EV_MAX_TILE;
  float* buf = (float*)malloc((size_t)P * EV_MAX_TILE * sizeof(float));
  int64_t* pin = (int64_t*)malloc((size_t)P * 5 * sizeof(int64_t));
  if (!buf || !pin) { free(buf); free(pin); return -1; }
  ev_tiles(ev, bnd, C, CB, H, W, wp, bias, Cout, geo, out, ostr, Ho, Wo, p0, p1, P, twmax, off, buf, pin, NULL);
  free(buf);
  free(pin);
  return 0;
}

/* The conv followed by a neuron (ev_neuron) over `steps` time steps of step_pixels output pixels each
   (pixel p = t * step_pixels + j; out, res and v channels_last and dense): for pixels j0..j1 of a step,
   groups of P pixels run step after step, so each group's potentials stay in cache and the conv's
   output never goes to memory. out receives post * spike. Every element is computed with the same
   operations as the conv, the Add and the neuron kernel run one after another. Returns -1 when out
   of memory, -2 for unknown neuron codes. With lev, the spikes of each group are listed as the events
   of a conv reading them (snnc_spike_events_f32 with channel blocks of lcb, amplitude post) into lev,
   lbnd, loff while they are in cache (-3: a value neither 0 nor post, which cannot happen). With out
   NULL (lev needed, else -4) the spikes go to a group's scratch only: their lists are the result.
   The residual is res (dense) or, with rev, the lists rev, rbnd, roff (channel blocks of rcb) of spikes
   of amplitude ramp: element c of pixel p is ramp where listed, else 0 * ramp (the dense value's bits).
   With pacc (channels_last [N, Cout, Ho, Wo], updated in place; no residual): a running 2x2/stride-2 max pool
   between the conv and the neuron (ev_pool_step): v, out and the lists are then of the pooled pixels (ostr
   the pooled output's), and every group j0.. of P pixels must start and end at pairs of whole rows. */
int snnc_event_conv2d_neuron_f32(const uint16_t* ev, const uint16_t* bnd, int64_t C, int64_t CB, int64_t H,
                                 int64_t W, const float* wp, const float* bias, int64_t Cout, const int64_t* geo,
                                 float* out, const int64_t* ostr, int64_t Ho, int64_t Wo, int64_t j0, int64_t j1,
                                 int64_t P, int64_t twmax, const int64_t* off, int64_t steps, int64_t step_pixels,
                                 const float* res, const uint16_t* rev, const uint16_t* rbnd, const int64_t* roff,
                                 int64_t rcb, float ramp, float* v, int charge, int reset, int compare,
                                 float pre, float post, float th, float vr, float tau,
                                 int64_t lcb, uint16_t* lev, uint16_t* lbnd, int64_t* loff, float* pacc)
{
  if (twmax > EV_MAX_TILE) twmax = EV_MAX_TILE;
  ev_neuron_row row = NULL;
#define EV_PICK(C, R, G) if (charge == (C) && reset == (R) && compare == (G)) row = ev_row_##C##_##R##_##G;
  SNNC_NEURON_VARIANTS(EV_PICK)
#undef EV_PICK
  if (!row) return -2;
  if (!out && !lev) return -4;
  /* one column tile and one listing block: each pixel is listed in the epilogue, from L1 */
  const int inline_list = lev && ev_tile_width(Cout, twmax) >= Cout && lcb >= Cout;
  int bad = 0;
  float* scratch = out || inline_list ? NULL : (float*)malloc((size_t)P * Cout * sizeof(float));
  float* prev = pacc ? (float*)malloc((size_t)P * Cout * sizeof(float)) : NULL;  /* (P / 4 windows) */
  const ev_neuron nr = {res, rev, rbnd, roff, rev ? (Cout + rcb - 1) / rcb : 0, ramp, scratch, v, step_pixels, row,
                        pre, post, th, vr, tau, inline_list ? lev : NULL, lbnd, loff, &bad, pacc, prev};
  float* buf = (float*)malloc((size_t)P * EV_MAX_TILE * sizeof(float));
  int64_t* pin = (int64_t*)malloc((size_t)P * 5 * sizeof(int64_t));
  if (!buf || !pin || (!out && !inline_list && !scratch) || (pacc && !prev)) {
    free(buf); free(pin); free(scratch); free(prev);
    return -1;
  }
  const int64_t side = pacc ? 2 : 1, pool = side * side;  /* a pooled pixel's window */
  for (int64_t j = j0; j < j1; j += P) {
    const int64_t jn = j1 - j < P ? j1 - j : P;
    for (int64_t w = 0; pacc && w < jn / 4; w++) {  /* the group's window maxima before its first step */
      const float* restrict r00 = ev_window(pacc, j / 4 + w, Ho, Wo, Cout), * restrict r10 = r00 + Wo * Cout;
      for (int64_t c = 0; c < Cout; c++) prev[w * Cout + c] = max4(r00[c], r00[Cout + c], r10[c], r10[Cout + c]);
    }
    for (int64_t t = 0; t < steps; t++) {
      const int64_t q0 = t * step_pixels + j;
      ev_tiles(ev, bnd, C, CB, H, W, wp, bias, Cout, geo, out, ostr, Ho, Wo, q0, q0 + jn, P, twmax, off, buf, pin,
               &nr);
      if (lev && !inline_list)  /* the next conv's events, listed while these pixels' spikes are in cache */
        bad |= ev_list(EV_SPIKES, scratch ? scratch : out, scratch ? q0 / pool : -1, ostr[0], ostr[1], ostr[2],
                       ostr[3], Ho / side, Wo / side, Cout, lcb, post, 1,
                       q0 / pool, (q0 + jn) / pool, lev, lbnd, loff) != 0;
    }
  }
  free(buf);
  free(pin);
  free(scratch);
  free(prev);
  return bad ? -3 : 0;
}
