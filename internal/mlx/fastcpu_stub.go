//go:build !cgo || nomlx

package mlx

func libFastUnary(int, hnd) (hnd, error)                                { return nil, ErrUnavailable }
func libFastBinary(int, hnd, hnd) (hnd, error)                          { return nil, ErrUnavailable }
func libFastLayerNorm(hnd, hnd, hnd, float32) (hnd, error)              { return nil, ErrUnavailable }
func libFastCheckDevice(DeviceType) error                               { return ErrUnavailable }
func libFastSoftmaxBias(hnd, float32, []hnd) (hnd, error)               { return nil, ErrUnavailable }
func libFastAttention(hnd, hnd, hnd, float32, []hnd, bool) (hnd, error) { return nil, ErrUnavailable }
func libFastContiguous(hnd) (hnd, error)                                { return nil, ErrUnavailable }
func libFastMatMul(hnd, hnd) (hnd, error)                               { return nil, ErrUnavailable }
func libFastISA() string                                                { return "" }
func libFastSetISA(int) error                                           { return ErrUnavailable }
func libFastThreads() int                                               { return 0 }
