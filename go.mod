module github.com/of3c/of3c

go 1.26

require google.golang.org/protobuf v1.36.11
