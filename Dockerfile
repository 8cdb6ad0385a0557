# syntax=docker/dockerfile:1
# Multi-stage: a static, stripped binary on a distroless base, run as non-root.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X github.com/voicebroker/voicebroker/internal/app.Version=${VERSION}" \
      -o /out/broker ./cmd/broker

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/broker /broker
USER 65532:65532
EXPOSE 8080
ENV BROKER_ADDR=:8080
ENTRYPOINT ["/broker"]
CMD ["serve"]
