// Package codegen lowers an of3c graph (graph.Graph, after the passes) to MLX.
// The compiled artifact (.of3) is package artifact's; codegen depends only on
// graph, passes, internal/mlx and runtime/ref.
//
// # Lowering
//
// A Program holds one graph and its weights, uploaded once to MLX in the
// compute dtype. For each concrete input signature (dtypes and shapes) the
// whole graph is traced into a single Go closure wrapped in mx::compile; the
// compiled function is kept in a cache keyed by that signature, so a second
// call with the same shapes only pays for the arithmetic, and MLX fuses the
// elementwise chains between the GEMMs.
//
// While tracing, every value is either a device array or a host tensor whose
// contents are known in Go (constants, Shape/Size of a traced array, and any
// small computation over those). Integer shape arithmetic that survived the
// passes (Shape → Gather → Concat → Reshape and friends) is evaluated on the
// Go side with the reference kernels, so MLX only ever sees static shapes and
// the compiled graph contains no index arithmetic. Ops whose shape-like inputs
// (Reshape's shape, Slice's starts, Expand's shape, ...) are only known on the
// device are refused with an error naming the node: MLX graphs have static
// shapes.
//
// # Precision
//
// Options.Precision selects the compute dtype of every float32 value:
// fp32 (default), bf16 or fp16. Float32 weights are converted once at
// upload, float32 inputs on entry and float32 outputs are converted back on
// exit, so the artifact's signature does not change with the precision.
// Inside the graph:
//   - Softmax uses MLX's precise mode (f32 internally);
//   - LayerNormalization is computed on f32 copies of x, scale and bias and
//     rounded to the compute dtype at the end (its mean and variance never
//     see half precision);
//   - of3c.Attention converts q, k, v and the biases to f32, evaluates
//     logits, softmax and P·v in f32, and rounds only its output — the
//     contract in docs/ops.md — except on the GPU fused-SDPA path, whose
//     kernel accumulates in f32 itself;
//   - fp16 has a largest finite value of 65504, so float constants are
//     clamped to ±65504 when converted (1e9 would otherwise become +inf and
//     the mask bias `1e9·(mask−1)` would give 0·inf = NaN for unmasked
//     positions); attention reads a bias value at or below −32768 as −1e9,
//     so a clamped mask still masks completely and a fully masked row is
//     still uniform, as in the f32 model.
//
// # Float64
//
// MLX supports float64 only on the CPU, and even there its transcendental
// functions (exp, log, tanh, erf, ...) are evaluated with float32 accuracy.
// On the CPU float64 values stay float64 (exact for +, −, ×, ÷, matmul and
// comparisons; ~1e-7 relative for transcendentals). On the GPU they are
// computed in float32 and converted back at the outputs.
//
// # Lowering paths
//
// Fused ops have several lowerings; for each, one decision function in
// paths.go names the path from the device, the operands' device dtypes and
// shapes (AttentionPath, SwiGLUPath, TriangleMultiplicationPath,
// OuterProductMeanPath, LayerNormPath), and the lowering switches on it.
// PathTable lists them (docs/architecture.md prints it); PlanLowerings
// decides from graph types at compile time, Program.Lowerings reports what a
// trace took. For of3c.Attention: MLX's fused scaled_dot_product_attention
// on the GPU for bf16/fp16 (biases summed into one additive mask);
// internal/mlx's FastAttention on the CPU for f32 (no logits materialised);
// otherwise matmul → softmax → matmul in f32, with batch_chunk and
// query_chunk as loops of slices joined by concatenate and kv_chunk as the
// LMA online-softmax loop. Because MLX frees an intermediate as soon as its
// last reader has run (and the lowering sequences the blocks), only one
// chunk's logits are alive at a time.
package codegen
