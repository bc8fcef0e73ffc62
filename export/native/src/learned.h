// Learned motion matching's source (controllers/learned/controller.py:
// LearnedSource): the state is a feature and a latent vector instead of a
// database frame. The projector maps a search query to a state, the stepper
// moves the state one tick on (kept within the data's range), the
// decompressor turns it into the pose (kernels.decode_pose). The three ELU
// networks are evaluated here in plain float32 loops, as weights.mlp does in
// numpy (the sums run in another order than numpy's BLAS: outputs agree to
// ~1e-6 relative, not bit for bit).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "controller.h"

namespace anim {

class ChunkFile;

struct Mlp {
    int n_in = 0, n_out = 0;
    std::vector<int> sizes;                        // in, hidden..., out
    std::vector<std::vector<float>> W, b;          // W[l]: [sizes[l] * sizes[l+1]] row-major (in, out)
    std::vector<float> mean_in, std_in, mean_out, std_out;
    mutable std::vector<float> h0, h1;             // scratch (no allocation per call)
    void read(const ChunkFile& f, const std::string& name);
    void eval(const float* x, float* out) const;
};

class LearnedSource : public Source {
public:
    static std::unique_ptr<Source> load(const std::string& path, Setup* setup);
    void set_style(int) override {}
    bool styles_switchable() const override { return false; }
    void reset() override;
    const float* features() const override { return state.data(); }
    bool at_end() const override { return false; }
    bool search(const float* query, bool must_move, double margin, double* cost) override;
    void advance(double dt) override;
    const float* rot() const override { return rot_.data(); }
    const float* pos() const override { return pos_.data(); }
    const float* vel() const override { return vel_.data(); }
    const float* avel() const override { return avel_.data(); }
    const uint8_t* contacts() const override { return contacts_; }
    int64_t frame() const override { return ticks; }
    int num_features() const override { return nf; }

private:
    void decode(double dt, double hysteresis);
    void step_state(double dt);
    int J = 0, nf = 0, ns = 0, num_contacts = 2;
    double fps = 60.0, contact_hysteresis = 0.15;
    Mlp dec, stepper, projector;
    std::vector<int32_t> moving;
    std::vector<float> rest, init_state, lo, hi;
    std::vector<float> state, proj, d, y;
    std::vector<float> rot_, pos_, vel_, avel_;
    uint8_t contacts_[2] = {0, 0};
    V3 root_pos;
    Q4 root_rot;
    int64_t ticks = 0;
};

}  // namespace anim
