// unique_ptr aliases for libsystemd handles. Each deleter drops exactly one reference; no code
// in this project calls sd_*_unref by hand.
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <memory>

namespace sshuttle {

template <auto Fn>
struct SdUnref {
    template <class T>
    void operator()(T* p) const noexcept {
        Fn(p);
    }
};

using EventPtr = std::unique_ptr<sd_event, SdUnref<sd_event_unref>>;
// Disabling before the unref makes sure a source held elsewhere by the loop stops firing.
using EventSourcePtr = std::unique_ptr<sd_event_source, SdUnref<sd_event_source_disable_unref>>;
// Flushes queued messages before closing, so a final reply is not lost.
using BusPtr = std::unique_ptr<sd_bus, SdUnref<sd_bus_flush_close_unref>>;
using BusSlotPtr = std::unique_ptr<sd_bus_slot, SdUnref<sd_bus_slot_unref>>;
using BusMessagePtr = std::unique_ptr<sd_bus_message, SdUnref<sd_bus_message_unref>>;
using BusCredsPtr = std::unique_ptr<sd_bus_creds, SdUnref<sd_bus_creds_unref>>;

}  // namespace sshuttle
