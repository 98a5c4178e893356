package ref

import (
	"fmt"

	"github.com/of3c/of3c/graph"
)

// The collectives of a sharded graph (graph/infer_of3c_dist.go) need every
// rank's data; the reference executor runs one process, so it evaluates them
// only for parts = 1 (the identity). passes/shard_test.go simulates P ranks
// with EvalNode and its own collectives.
func init() {
	register(kernelCollective, graph.FusedDomain+".ShardSlice", graph.FusedDomain+".AllGather",
		graph.FusedDomain+".AllToAll", graph.FusedDomain+".AllSum")
}

func kernelCollective(n *graph.Node, in []*array) ([]*array, error) {
	if p := n.AttrInt("parts", 0); p != 1 {
		return nil, fmt.Errorf("%s over %d ranks needs MLX's distributed backend; the reference executor runs one process", n.Op, p)
	}
	return []*array{in[0]}, nil
}
