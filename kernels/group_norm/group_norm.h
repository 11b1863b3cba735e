// kernels/group_norm/group_norm.h: GroupNorm with an optional activation in the same pass.
//   x viewed as rows (N·G, M), M = cpg·inner (cpg = C / G channels of `inner` elements each)
//   y = act(w[c] · (x − mean_r) · rstd_r + b[c]),  rstd_r = 1 / sqrt(var_r + eps)
// Statistics in float64 (two passes: mean, then the centred sum of squares). The backward
// returns dx and per-(row, channel) float64 partial sums of g·xhat and g (g: the gradient
// before the activation), which the caller sums over the batch in a fixed order.
#pragma once
#include "bias_act/bias_act.h"
#include "common/common.h"

namespace pf {
struct GroupNormParams {
  i64 rows, cpg, inner;  // rows = N·groups; x: (rows, cpg, inner)
  i64 groups;
  double eps;
  int act;               // a bias_act activation code (kLinear: none)
  double alpha;          // lrelu slope
};
// LayerNorm rows: one group, inner == 1 (the affine per element of a row), no activation. Their
// dW / dB partial sums are per block of kLayerNormRows rows: pw, pb (ceil(rows / 16), cpg).
constexpr i64 kLayerNormRows = 16;
inline bool layer_norm_rows(const GroupNormParams& p) { return p.groups == 1 && p.inner == 1 && p.act == 0; }
inline i64 partial_rows(const GroupNormParams& p) {
  return layer_norm_rows(p) ? (p.rows + kLayerNormRows - 1) / kLayerNormRows : p.rows;
}
}  // namespace pf

// w, b: (groups·cpg,) never null (ones / zeros stand in); mean, rstd: (rows,) float64.
PF_DECLARE_ISA(void, group_norm_forward_f32, (const float* x, const float* w, const float* b, float* y, double* mean, double* rstd, const pf::GroupNormParams& p))
PF_DECLARE_ISA(void, group_norm_forward_f64, (const double* x, const double* w, const double* b, double* y, double* mean, double* rstd, const pf::GroupNormParams& p))
// gx (rows·cpg·inner) when need_x, else scratch of the same size when act != kLinear, else
// unused (may be null); pw, pb: (partial_rows(p), cpg) float64, zeroed by the caller.
PF_DECLARE_ISA(void, group_norm_backward_f32, (const float* gy, const float* x, const float* w, const float* b, const double* mean, const double* rstd, float* gx, bool need_x, double* pw, double* pb, const pf::GroupNormParams& p))
PF_DECLARE_ISA(void, group_norm_backward_f64, (const double* gy, const double* x, const double* w, const double* b, const double* mean, const double* rstd, double* gx, bool need_x, double* pw, double* pb, const pf::GroupNormParams& p))
