//go:build !cgo || nomlx

package mlx

func libDistAvailable(string) bool               { return false }
func libDistInit(string, int) (int, int, error)  { return 0, 1, ErrUnavailable }
func libDistGroup() (int, int)                   { return 0, 1 }
func libDistAllSum(hnd) (hnd, error)             { return nil, ErrUnavailable }
func libDistAllGather(hnd, int) (hnd, error)     { return nil, ErrUnavailable }
func libDistAllToAll(hnd, int, int) (hnd, error) { return nil, ErrUnavailable }
func libDistSend(hnd, int) (hnd, error)          { return nil, ErrUnavailable }
func libDistRecv([]int, Dtype, int) (hnd, error) { return nil, ErrUnavailable }
